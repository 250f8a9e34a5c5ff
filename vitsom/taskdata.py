"""What a run trains and is scored on, and how it is cut into mini-batches.

:func:`load_task_data` applies the reference's data protocol to a config (clustering: train and
score on the same split; classification: an 80/20 train/val split of the official train split,
scored on the official test split; profile caps and label fractions as fixed subsets).
:class:`ArrayBatches` (in-memory sets, held on the training device) and :class:`LoaderBatches`
(the colour sets, through a DataLoader with augmentation) replay any epoch's order exactly from
``(seed, epoch)``, which is what makes a resumed run equal an uninterrupted one.
"""
from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from . import data as vdata
from .config import RunConfig


@dataclass
class TaskData:
    train: vdata.ImageArrays | Dataset          # a Dataset (with augmentation) for colour classification
    eval_sets: dict[str, vdata.ImageArrays | Dataset]   # clustering: {split: …}; classification: {"val", "test"}


def uses_loader(cfg: RunConfig) -> bool:
    """Colour classification sets (CIFAR, SVHN, PathMNIST, Flowers-17, Tiny-ImageNet) go through a
    DataLoader with the reference's per-sample augmentation; everything else is GPU-resident."""
    spec = vdata.get_spec(cfg.dataset)
    return cfg.task == "classification" and (spec.channels == 3 or not spec.in_memory)


def labels_of(ds) -> np.ndarray:
    if isinstance(ds, vdata.ImageArrays):
        return ds.labels.numpy()
    if isinstance(ds, Subset):
        return labels_of(ds.dataset)[np.asarray(ds.indices)]
    return np.asarray(ds.targets)


def fixed_subset(n: int, k: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=g)[:k].sort().values


def download_enabled() -> bool:
    """Download missing datasets where a source exists (default); ``VITSOM_DOWNLOAD=0`` turns it off."""
    return os.environ.get("VITSOM_DOWNLOAD", "1") != "0"


def load_task_data(cfg: RunConfig, root=None) -> TaskData:
    """Arrays for training and evaluation, following the reference protocol.

    Clustering: train and score on the same split (``all`` = train+test). Classification: the
    official train split is split 80/20 train/val (generator seed 0), the official test split
    scores. ``max_train_samples`` takes a fixed subset (seed 0: the same for every run seed);
    ``label_fraction`` keeps a per-seed subset of the training labels."""
    t = cfg.train
    spec = vdata.get_spec(cfg.dataset)
    if spec.channels != cfg.model.in_chans or spec.image_size != cfg.model.img_size:
        raise ValueError(f"dataset {spec.name} has {spec.channels}×{spec.image_size}² images but the model "
                         f"expects {cfg.model.in_chans}×{cfg.model.img_size}²")
    if cfg.task == "clustering":
        arrays = vdata.load_arrays(cfg.dataset, cfg.split, root, download=download_enabled())
        if t.max_train_samples and t.max_train_samples < len(arrays):
            arrays = arrays.subset(fixed_subset(len(arrays), t.max_train_samples, 0))
        evals = {cfg.split: arrays}
        if cfg.split == "train":   # held-out protocol: units labelled on train, scored on test
            test = vdata.load_arrays(cfg.dataset, "test", root, download=download_enabled())
            if t.max_train_samples and t.max_train_samples < len(test):
                test = test.subset(fixed_subset(len(test), max(t.max_train_samples // 4, 1), 0))
            evals["test"] = test
        return TaskData(arrays, evals)
    if uses_loader(cfg):
        train, val, test = vdata.classification_splits(
            cfg.dataset, root, seed=0, train_transform=vdata.build_transforms(cfg.dataset, True),
            eval_transform=vdata.build_transforms(cfg.dataset, False), download=download_enabled())
        if t.label_fraction < 1:
            train = Subset(train, fixed_subset(len(train), max(1, round(len(train) * t.label_fraction)), cfg.seed).tolist())
        if t.max_train_samples and t.max_train_samples < len(train):
            train = Subset(train, fixed_subset(len(train), t.max_train_samples, 0).tolist())
            test = Subset(test, fixed_subset(len(test), max(t.max_train_samples // 2, 1), 0).tolist())
            val = Subset(val, fixed_subset(len(val), max(t.max_train_samples // 4, 1), 0).tolist())
        return TaskData(train, {"val": val, "test": test})
    full = vdata.load_arrays(cfg.dataset, "train", root, download=download_enabled())
    test = vdata.load_arrays(cfg.dataset, "test", root, download=download_enabled())
    # the reference's random_split(train, [80 %, 20 %], generator seed 0)
    tr_idx, va_idx = vdata._seeded_split(len(full), [int((1 - spec.val_fraction) * len(full))], 0)
    train, val = full.subset(tr_idx.sort().values), full.subset(va_idx.sort().values)
    if t.label_fraction < 1:
        train = train.subset(fixed_subset(len(train), max(1, round(len(train) * t.label_fraction)), cfg.seed))
    if t.max_train_samples:   # profiles cap the data: training set, and evaluation sets in proportion
        if t.max_train_samples < len(train):
            train = train.subset(fixed_subset(len(train), t.max_train_samples, 0))
        if max(t.max_train_samples // 2, 1) < len(test):
            test = test.subset(fixed_subset(len(test), max(t.max_train_samples // 2, 1), 0))
        if max(t.max_train_samples // 4, 1) < len(val):
            val = val.subset(fixed_subset(len(val), max(t.max_train_samples // 4, 1), 0))
    return TaskData(train, {"val": val, "test": test})


class ArrayBatches:
    """Mini-batches from an in-memory dataset held on the training device as uint8.

    Epoch e's order is a permutation from a generator seeded by (seed, e), so any epoch can be
    replayed exactly after a resume; the last partial batch is dropped (the reference's drop_last)."""

    def __init__(self, arrays: vdata.ImageArrays, batch_size: int, device: torch.device, seed: int,
                 mean: float | None = None, std: float | None = None) -> None:
        self.images = arrays.images.to(device)
        self.labels = arrays.labels.to(device)
        self.n, self.batch_size, self.device, self.seed = len(arrays), batch_size, device, seed
        self.batch_size = min(batch_size, self.n)
        self.mean, self.std = mean, std

    @property
    def steps_per_epoch(self) -> int:
        return self.n // self.batch_size

    def to_float(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float().div_(255.0)
        if self.mean is not None:
            x = (x - self.mean) / self.std
        return x

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        order = torch.randperm(self.n, generator=g).to(self.device)
        for i in range(start, self.steps_per_epoch):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            yield self.to_float(self.images[idx]), self.labels[idx]


class LoaderBatches:
    """Mini-batches through a DataLoader with per-sample CPU augmentation (the big colour sets).

    Epoch e is shuffled by a generator seeded by (seed, e), so a resumed run replays the same
    order; augmentation randomness is seeded per epoch as well (workers get derived seeds)."""

    def __init__(self, dataset: Dataset, batch_size: int, device: torch.device, seed: int,
                 num_workers: int | None = None) -> None:
        self.dataset, self.device, self.seed = dataset, device, seed
        self.batch_size = min(batch_size, len(dataset))
        self.num_workers = min(8, os.cpu_count() or 1) if num_workers is None else num_workers

    @property
    def steps_per_epoch(self) -> int:
        return len(self.dataset) // self.batch_size

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        torch.manual_seed(self.seed * 1_000_003 + epoch)       # augmentation randomness of this epoch
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        order = torch.randperm(len(self.dataset), generator=g)[start * self.batch_size:].tolist()
        loader = DataLoader(Subset(self.dataset, order), batch_size=self.batch_size, drop_last=True,
                            num_workers=self.num_workers, pin_memory=self.device.type == "cuda",
                            persistent_workers=False,
                            worker_init_fn=_leave_ctrl_c_to_the_trainer if self.num_workers else None)
        for x, y in loader:
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)


def _leave_ctrl_c_to_the_trainer(worker_id: int) -> None:
    """DataLoader workers ignore SIGINT. Ctrl-C in a terminal reaches the whole process group, and a
    worker that stopped on it would make the loader fail ("worker exited unexpectedly") before the
    training loop could save its checkpoint and stop (:func:`vitsom.train.stop_requests`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def input_norm(cfg: RunConfig, device: torch.device):
    """Input normalisation: none for clustering (pixels in [0,1]); the dataset's mean/std for
    classification (0.5/0.5 for one channel)."""
    spec = vdata.get_spec(cfg.dataset)
    if cfg.task == "clustering":
        return None
    if spec.channels == 1:
        return (0.5, 0.5)
    return (torch.tensor(spec.mean, device=device).view(1, 3, 1, 1),
            torch.tensor(spec.std, device=device).view(1, 3, 1, 1))
