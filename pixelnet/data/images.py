"""Image bytes as published (a JPEG or PNG member of an archive) -> an RGB array, naming the source on failure."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def decode_rgb(data: bytes, where: object) -> np.ndarray:
    """(H, W, 3) uint8 RGB from encoded image bytes; ValueError naming `where` when they do not decode."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im.convert("RGB"))  # (H, W, 3)
    except (OSError, SyntaxError) as err:
        raise ValueError(f"{where}: unreadable image ({err})") from err


_WIDE_GREY = ("I;16", "I;16L", "I;16B", "I;16N", "F")  # PIL modes read as arrays (uint16, float32), not converted
DTYPES = "uint8 (0-255), uint16 (0-65535) or float16/32/64 (0-1)"
SHAPES = "an H×W, H×W×1, H×W×3 or H×W×4 image"


def to_rgb8(image: object, where: object = "image") -> np.ndarray:
    """(H, W, 3) uint8 RGB from an image in memory: a numpy array or a PIL image; `where` names it in errors.

    Arrays: grey H×W or H×W×1 (repeated into three channels), RGB H×W×3 or RGBA H×W×4 (alpha
    dropped: the stored colour is kept, not composited on a background), of dtype uint8 (used as
    it is), uint16 (scaled by its full range, 65535 -> 255, as 16-bit files are read) or float16/32/64
    with values in [0, 1] (scaled by 255 and rounded). Anything else is refused with one sentence
    saying what was given and what is accepted: another shape (e.g. channels first), another dtype
    (bool, signed integers), float values outside [0, 1] or not finite, an empty image (TypeError for
    the type or dtype, ValueError for the rest). PIL images: 16-bit grey and float grey (modes I;16,
    F) follow the array rules; every other mode is converted to RGB by PIL (palette, grey, CMYK,
    RGBA with alpha dropped...), except 32-bit integer grey (mode I), refused like an int32 array.
    """
    if isinstance(image, Image.Image):
        try:
            image = np.asarray(image if image.mode in _WIDE_GREY or image.mode == "I" else image.convert("RGB"))
        except (ValueError, OSError) as err:
            raise ValueError(f"{where}: a PIL image of mode {image.mode} that PIL cannot convert to RGB ({err})") from None
    elif not isinstance(image, np.ndarray):
        raise TypeError(f"{where}: expected a numpy array or a PIL image, got {type(image).__module__}.{type(image).__name__}")
    shape = tuple(image.shape)
    if not (image.ndim == 2 or (image.ndim == 3 and shape[-1] in (1, 3, 4))):
        hint = ""
        if image.ndim == 3 and shape[0] in (1, 3, 4) and min(shape[1:]) > 4:
            hint = " (channels first? use image.transpose(1, 2, 0))"
        elif image.ndim == 4 and shape[0] == 1:
            hint = " (a batch of one? use image[0])"
        raise ValueError(f"{where}: expected {SHAPES}, got shape {shape}{hint}")
    if 0 in shape[:2]:
        raise ValueError(f"{where}: an empty image, shape {shape}")
    kind, size = image.dtype.kind, image.dtype.itemsize
    if not (kind == "f" or (kind == "u" and size in (1, 2))):
        raise TypeError(f"{where}: expected dtype {DTYPES}, got {image.dtype}")
    rgb = image[..., :3] if image.ndim == 3 else image[..., None]  # (H, W, 3) or (H, W, 1): alpha dropped
    if kind == "f":
        finite = np.isfinite(rgb)
        if not finite.all():
            raise ValueError(f"{where}: a float image with {int((~finite).sum())} non-finite values (NaN or inf); "
                             f"float images must hold values in [0, 1]")
        lo, hi = float(rgb.min()), float(rgb.max())
        if lo < 0 or hi > 1:
            raise ValueError(f"{where}: float images must hold values in [0, 1], found [{lo:g}, {hi:g}]"
                             + (" (values in 0-255? use image / 255)" if 0 <= lo and hi <= 255 else ""))
        rgb = np.rint(rgb.astype(np.float32) * 255).astype(np.uint8)  # float16 widened first: exact for k / 255
    elif size == 2:
        rgb = ((rgb.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)  # 65535 -> 255, rounded
    if rgb.shape[-1] == 1:
        rgb = np.repeat(rgb, 3, axis=-1)  # (H, W, 3) grey as RGB
    return np.ascontiguousarray(rgb, dtype=np.uint8)  # (H, W, 3)
