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
