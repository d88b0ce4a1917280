"""Training batches: shards joined with precomputed pixel indices, augmented, batched.

One WebDataset pipeline per epoch: shards in a seeded order, a seeded shuffle buffer, decode, then
for each image the epoch's draw of pixel indices (draw ``epoch % K``), targets gathered at those
indices, and geometric augmentation that moves the pixels with the image.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import webdataset as wds
from torch.utils.data import IterableDataset, get_worker_info

from pixelnet.data.shards import decode
from pixelnet.data.transforms import AugmentConfig, Augmented, augment
from pixelnet.tasks.base import Task


@dataclass
class Batch:
    images: torch.Tensor   # (B, 3, h, w) uint8
    coords: torch.Tensor   # (B, N, 2) float32 pixel coordinates in the augmented images
    targets: torch.Tensor  # (B, N, ...) task targets
    weight: torch.Tensor   # (B, N) float32: 1 where the pixel survived the crop
    keys: list[str]

    def to(self, device: torch.device | str) -> "Batch":
        nb = torch.device(device).type == "cuda"
        return Batch(
            self.images.to(device, non_blocking=nb),
            self.coords.to(device, non_blocking=nb),
            self.targets.to(device, non_blocking=nb),
            self.weight.to(device, non_blocking=nb),
            self.keys,
        )

    def pin_memory(self) -> "Batch":
        """Page-locked copies, so the copy to the GPU runs asynchronously (DataLoader calls this)."""
        return Batch(self.images.pin_memory(), self.coords.pin_memory(), self.targets.pin_memory(),
                     self.weight.pin_memory(), self.keys)


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
    """An endless stream of Batches (epochs one after another)."""

    def __init__(
        self,
        shards: list[Path],
        indices: dict[str, np.ndarray],
        task: Task,
        augment_config: AugmentConfig,
        images_per_batch: int,
        seed: int = 0,
        shuffle_buffer: int = 256,
    ) -> None:
        if images_per_batch < 1:
            raise ValueError(f"sampling.images_per_batch must be >= 1, got {images_per_batch}")
        self.shards = [str(p) for p in shards]
        self.indices = indices
        self.task = task
        self.augment_config = augment_config
        self.images_per_batch = images_per_batch
        self.seed = seed
        self.shuffle_buffer = shuffle_buffer

    def _epoch(self, epoch: int, rng: np.random.Generator) -> Iterator[dict]:
        shards = list(self.shards)
        random.Random(self.seed * 1_000_003 + epoch).shuffle(shards)
        stream = (
            wds.WebDataset(shards, shardshuffle=False, empty_check=False, nodesplitter=None,
                           workersplitter=wds.split_by_worker)
            .shuffle(self.shuffle_buffer, rng=random.Random(self.seed * 7_919 + epoch))
        )
        for sample in stream:
            record = decode(sample)
            key = record["key"]
            if key not in self.indices:
                raise KeyError(f"{sample.get('__url__', '?')}: key {key} has no sampled pixels (re-run the sample stage)")
            draws = self.indices[key]  # (K, N)
            idx = draws[epoch % len(draws)]
            targets = self.task.gather(record, idx)
            aug = augment(record["image"], idx, self.augment_config, rng)
            targets = move_targets(self.task, targets, aug)
            yield {"key": key, "image": aug.image, "coords": aug.coords, "targets": targets, "weight": aug.inside}

    def __iter__(self) -> Iterator[Batch]:
        info = get_worker_info()
        worker = info.id if info else 0
        rng = np.random.default_rng([self.seed, worker])
        epoch = 0
        pending: list[dict] = []
        while True:
            produced = 0
            for item in self._epoch(epoch, rng):
                produced += 1
                pending.append(item)
                if len(pending) == self.images_per_batch:
                    yield _collate(pending)
                    pending = []
            if produced == 0:
                raise RuntimeError(f"no training samples in {self.shards[:3]}…")
            epoch += 1


def _collate(items: list[dict]) -> Batch:
    return Batch(
        images=torch.from_numpy(np.stack([i["image"] for i in items])).permute(0, 3, 1, 2).contiguous(),  # (B, 3, h, w)
        coords=torch.from_numpy(np.stack([i["coords"] for i in items])),  # (B, N, 2)
        targets=torch.from_numpy(np.stack([i["targets"] for i in items])),  # (B, N, ...)
        weight=torch.from_numpy(np.stack([i["weight"] for i in items]).astype(np.float32)),  # (B, N)
        keys=[i["key"] for i in items],
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
