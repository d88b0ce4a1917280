"""Training batches: shards joined with precomputed pixel indices, augmented, batched.

One WebDataset pipeline per epoch: shards in a seeded order, a seeded shuffle buffer, decode, then
for each image the epoch's draw of pixel indices (draw ``epoch % K``), targets gathered at those
indices, and geometric augmentation (seeded by epoch and key) that moves the pixels with the image.
See `PixelBatches` for how ranks and workers split the stream and how it resumes.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import webdataset as wds
from torch.utils.data import IterableDataset, get_worker_info

from pixelnet.data.shards import ShardError, decode
from pixelnet.data.transforms import AugmentConfig, Augmented, augment
from pixelnet.tasks.base import Task


@dataclass
class Batch:
    images: torch.Tensor   # (B, 3, h, w) uint8
    coords: torch.Tensor   # (B, N, 2) float32 pixel coordinates in the augmented images
    targets: torch.Tensor  # (B, N, ...) task targets
    weight: torch.Tensor   # (B, N) float32: 1 where the pixel survived the crop
    keys: list[str]
    skipped: list[str] = field(default_factory=list)  # bad samples passed over since the last batch

    def to(self, device: torch.device | str) -> "Batch":
        nb = torch.device(device).type == "cuda"
        return Batch(
            self.images.to(device, non_blocking=nb),
            self.coords.to(device, non_blocking=nb),
            self.targets.to(device, non_blocking=nb),
            self.weight.to(device, non_blocking=nb),
            self.keys,
            self.skipped,
        )

    def pin_memory(self) -> "Batch":
        """Page-locked copies, so the copy to the GPU runs asynchronously (DataLoader calls this)."""
        return Batch(self.images.pin_memory(), self.coords.pin_memory(), self.targets.pin_memory(),
                     self.weight.pin_memory(), self.keys, self.skipped)


def move_targets(task: Task, targets: np.ndarray, aug: Augmented) -> np.ndarray:
    """Targets as the augmented image shows them: rotated, then flipped, in the order augment applies."""
    if aug.rotation:
        targets = task.rotate_targets(targets, aug.rotation)
    if aug.flipped:
        targets = task.flip_targets(targets)
    return targets


def load_indices(path: Path) -> dict[str, np.ndarray]:
    """The sample stage's output: {key: (K, N) int32 flat indices}."""
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


class PixelBatches(IterableDataset):
    """An endless, resumable stream of Batches (epochs one after another).

    Every loader slot — one per (rank, worker) pair — reads the same seeded order of samples each
    epoch and keeps every `slots`-th one, so across all ranks and workers each sample is used once
    per epoch whatever the number of shards. A sample's augmentation depends only on (seed, epoch,
    key), so the stream is the same for any worker count and can restart at any batch: `start_batch`
    skips that many batches (of this rank's stream, as the DataLoader deals them round-robin from
    its workers) by reading, not decoding, the samples before it.

    A sample that cannot be decoded, or whose targets do not match its image, is skipped: the batch
    carries a line naming the shard and key in `Batch.skipped`, and the training loop counts them.
    A shard that cannot be read on (truncated, a corrupt header) is skipped from that point, naming
    the shard and how far it got.
    """

    def __init__(
        self,
        shards: list[Path],
        indices: dict[str, np.ndarray],
        task: Task,
        augment_config: AugmentConfig,
        images_per_batch: int,
        seed: int = 0,
        shuffle_buffer: int = 256,
        start_batch: int = 0,
        rank: int = 0,
        world_size: int = 1,
        shard_keys: dict[str, list[str]] | None = None,
    ) -> None:
        if images_per_batch < 1:
            raise ValueError(f"sampling.images_per_batch must be >= 1, got {images_per_batch}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside a world of {world_size}")
        self.shards = [str(p) for p in shards]
        self.indices = indices
        self.task = task
        self.augment_config = augment_config
        self.images_per_batch = images_per_batch
        self.seed = seed
        self.shuffle_buffer = shuffle_buffer
        self.start_batch = start_batch
        self.rank = rank
        self.world_size = world_size
        self.shard_keys = shard_keys or {}  # shard file name -> its keys (the manifest's), to name lost ones

    def _samples(self, epoch: int, problems: dict[str, str]) -> Iterator[dict]:
        """The epoch's raw samples in the order every slot agrees on; unreadable shards are noted."""
        shards = list(self.shards)
        random.Random(self.seed * 1_000_003 + epoch).shuffle(shards)

        def unreadable(exn: Exception) -> bool:
            where = next((a for a in reversed(exn.args) if isinstance(a, str) and a.endswith(".tar")), "?")
            problems[where] = str(exn.args[0] if exn.args else exn)
            return True  # go on with the next shard

        stream = (
            wds.WebDataset(shards, shardshuffle=False, empty_check=False, nodesplitter=None, workersplitter=None,
                           handler=unreadable)
            .shuffle(self.shuffle_buffer, rng=random.Random(self.seed * 7_919 + epoch))
        )
        yield from stream

    def _item(self, sample: dict, epoch: int) -> dict:
        record = decode(sample)  # ShardError names shard and key (also for a target of the wrong size)
        key = record["key"]
        if key not in self.indices:
            raise KeyError(f"{sample.get('__url__', '?')}: key {key} has no sampled pixels (re-run the sample stage)")
        draws = self.indices[key]  # (K, N)
        idx = draws[epoch % len(draws)]
        targets = self.task.gather(record, idx)
        rng = np.random.default_rng([self.seed, epoch, zlib.crc32(key.encode())])  # per sample: resumable
        aug = augment(record["image"], idx, self.augment_config, rng)
        targets = move_targets(self.task, targets, aug)
        return {"key": key, "image": aug.image, "coords": aug.coords, "targets": targets, "weight": aug.inside}

    def __iter__(self) -> Iterator[Batch]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        slots = self.world_size * workers
        slot = self.rank * workers + worker
        skip = len(range(worker, self.start_batch, workers)) * self.images_per_batch  # items before our first batch
        epoch = 0
        pending: list[dict] = []
        skipped: list[str] = []
        while True:
            seen = kept = 0
            problems: dict[str, str] = {}  # shard -> why it could not be read on
            keys_seen: dict[str, set[str]] = {}
            for sample in self._samples(epoch, problems):
                seen += 1
                keys_seen.setdefault(sample.get("__url__", "?"), set()).add(sample.get("__key__", "?"))
                if (seen - 1) % slots != slot:
                    continue
                kept += 1
                if skip:
                    skip -= 1
                    continue
                try:
                    pending.append(self._item(sample, epoch))
                except ShardError as err:  # undecodable member, or a target not the size of its image
                    skipped.append(str(err))
                    continue
                if len(pending) == self.images_per_batch:
                    yield _collate(pending, skipped)
                    pending, skipped = [], []
            if slot == 0 and not skip:  # once per epoch, from one slot (not again for an epoch resumed past)
                skipped.extend(self._lost(problems, keys_seen))
            if seen == 0:
                raise RuntimeError(f"no readable training samples in {self.shards[:3]}…")
            if kept == 0:
                raise RuntimeError(f"{seen} training samples are fewer than the {slots} loader slots (ranks x workers)")
            epoch += 1

    def _lost(self, problems: dict[str, str], keys_seen: dict[str, set[str]]) -> list[str]:
        """One line per sample a damaged shard kept from us: by key where the manifest lists the shard's
        keys (a truncated tar can also just end early, with no error to catch), else per shard."""
        lines = []
        for url in self.shards:
            expected = self.shard_keys.get(Path(url).name)
            why = problems.pop(url, None)
            if expected is None:
                if why is not None:
                    lines.append(f"{url}: unreadable from here on, the rest of the shard skipped ({why})")
                continue
            seen = keys_seen.get(url, set())
            state = f"unreadable from here on ({why})" if why else "shorter than its manifest (truncated?)"
            lines += [f"{url}: {key}: lost, the shard is {state}" for key in expected if key not in seen]
        lines += [f"{url}: unreadable ({why})" for url, why in problems.items()]
        return lines


def _collate(items: list[dict], skipped: list[str] | None = None) -> Batch:
    return Batch(
        images=torch.from_numpy(np.stack([i["image"] for i in items])).permute(0, 3, 1, 2).contiguous(),  # (B, 3, h, w)
        coords=torch.from_numpy(np.stack([i["coords"] for i in items])),  # (B, N, 2)
        targets=torch.from_numpy(np.stack([i["targets"] for i in items])),  # (B, N, ...)
        weight=torch.from_numpy(np.stack([i["weight"] for i in items]).astype(np.float32)),  # (B, N)
        keys=[i["key"] for i in items],
        skipped=list(skipped or []),
    )


def _identity(batch: Batch) -> Batch:
    return batch


def batch_loader(dataset: PixelBatches, num_workers: int = 0, pin_memory: bool = False, prefetch: int = 4) -> Iterator[Batch]:
    """Wrap in a DataLoader so workers decode and augment while the model trains; each worker keeps
    `prefetch` batches ready, pinned when `pin_memory` (for asynchronous copies to a GPU)."""
    if num_workers == 0:
        return (b.pin_memory() for b in dataset) if pin_memory else iter(dataset)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=None, num_workers=num_workers, pin_memory=pin_memory,
        prefetch_factor=prefetch, persistent_workers=True, collate_fn=_identity,
    )
    return iter(loader)
