"""Training batches: shards joined with the sampling plan, augmented as planned, batched.

One WebDataset pipeline per epoch: shards in an order and through a shuffle buffer seeded by the
plan, decode, then for each image the epoch's planned draw (draw ``epoch % K``): the image warped
into its window and the planned pixels moved with it (`pixelnet.data.transforms`), targets read at
the pixels' source indices. The loader draws nothing itself: every random choice comes from the
plan (`pixelnet.plan`). See `PixelBatches` for how ranks and workers split the stream and how it
resumes.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import webdataset as wds
from torch.utils.data import IterableDataset, get_worker_info

from pixelnet.data.shards import ShardError, decode
from pixelnet.data.transforms import Augmented, apply_draw
from pixelnet.plan import Plan
from pixelnet.tasks.base import Task


@dataclass
class Batch:
    images: torch.Tensor   # (B, 3, h, w) uint8
    coords: torch.Tensor   # (B, N, 2) float32 pixel coordinates in the augmented images
    targets: torch.Tensor  # (B, N, ...) task targets; zeros in padding rows
    weight: torch.Tensor   # (B, N) float32: 1 for a planned pixel, 0 for a padding row
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
    """Targets as the augmented image shows them: rotated, then flipped, in the order the plan's map applies."""
    if aug.rotation:
        targets = task.rotate_targets(targets, aug.rotation)
    if aug.flipped:
        targets = task.flip_targets(targets)
    return targets


class PixelBatches(IterableDataset):
    """An endless, resumable stream of Batches (epochs one after another).

    Every loader slot — one per (rank, worker) pair — reads the same seeded order of samples each
    epoch and keeps every `slots`-th one, so across all ranks and workers each sample is used once
    per epoch whatever the number of shards. A sample's augmentation and pixels are the plan's draw
    (key, epoch mod K) and the epoch's order comes from the plan's seeds, so the stream is the same
    for any worker count and can restart at any batch: `start_batch` skips that many batches (of
    this rank's stream, as the DataLoader deals them round-robin from its workers) by reading, not
    decoding, the samples before it.

    A sample that cannot be decoded, or whose targets do not match its image, is skipped: the batch
    carries a line naming the shard and key in `Batch.skipped`, and the training loop counts them.
    A shard that cannot be read on (truncated, a corrupt header) is skipped from that point, naming
    the shard and how far it got.
    """

    def __init__(
        self,
        shards: list[Path],
        plan: Plan,
        task: Task,
        images_per_batch: int,
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
        self.plan = plan
        self.task = task
        self.images_per_batch = images_per_batch
        self.shuffle_buffer = shuffle_buffer
        self.start_batch = start_batch
        self.rank = rank
        self.world_size = world_size
        self.shard_keys = shard_keys or {}  # shard file name -> its keys (the manifest's), to name lost ones

    def _samples(self, epoch: int, problems: dict[str, str]) -> Iterator[dict]:
        """The epoch's raw samples in the order every slot agrees on; unreadable shards are noted."""
        shards = list(self.shards)
        seed = int(self.plan.order_seeds[epoch % self.plan.draws]) * 1_000_003 + epoch  # the plan decides the order
        random.Random(seed).shuffle(shards)

        def unreadable(exn: Exception) -> bool:
            problems[_shard_named(exn, self.shards)] = str(exn.args[0] if exn.args else exn)
            return True  # go on with the next shard

        stream = (
            wds.WebDataset(shards, shardshuffle=False, empty_check=False, nodesplitter=None, workersplitter=None,
                           handler=unreadable)
            .shuffle(self.shuffle_buffer, rng=random.Random(seed * 7_919 + 1))
        )
        yield from stream

    def _item(self, sample: dict, epoch: int) -> dict:
        record = decode(sample, fields=(self.task.field,))  # ShardError names shard and key (also a target of the wrong size)
        key = record["key"]
        plan = self.plan
        i = plan.rows.get(key)
        if i is None:
            raise KeyError(f"{sample.get('__url__', '?')}: key {key} is not in the sampling plan (re-run the sample stage)")
        if tuple(record["image"].shape[:2]) != tuple(plan.sizes[i]):
            raise KeyError(f"{sample.get('__url__', '?')}: key {key} is {record['image'].shape[:2]} but was planned at "
                           f"{tuple(plan.sizes[i])} (re-run the sample stage)")
        k = epoch % plan.draws
        pixels = plan.pixels[i, k].astype(np.int64)  # (N,) flat source indices, padding after counts
        count = int(plan.counts[i, k])
        aug = apply_draw(record["image"], pixels, count, plan.affine[i, k], plan.crop,
                         float(plan.angle[i, k]), bool(plan.flip[i, k]))
        return {"key": key, "image": aug.image, "coords": aug.coords, "targets": self._targets(record, pixels, count, aug),
                "weight": aug.valid}

    def _targets(self, record: dict, pixels: np.ndarray, count: int, aug: Augmented) -> np.ndarray:
        """(N, ...) targets of the planned rows, zeros in the padding rows. A padding row's pixel index
        is a placeholder (0), whose target may be anything, e.g. a label no class of the task has:
        cross-entropy raises on it even at weight 0. Zero is neutral for every task at weight 0
        (a negative edge, an invalid normal, class 0), so the loss is unchanged."""
        real = move_targets(self.task, self.task.gather(record, pixels[:count]), aug)  # (count, ...)
        targets = np.zeros((len(pixels), *real.shape[1:]), real.dtype)  # (N, ...)
        targets[:count] = real
        return targets

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


def _shard_named(exn: Exception, shards: list[str]) -> str:
    """The shard an exception from the tar reader is about: an argument naming it, or a message that
    mentions it (e.g. "unexpected end of data @ <_io.BufferedReader name='…/train-000000.tar'>")."""
    texts = [a for a in reversed(exn.args) if isinstance(a, str)] + [str(exn)]
    for text in texts:
        if text in shards:
            return text
    for text in texts:
        for shard in shards:
            if shard in text:
                return shard
    return "?"


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
