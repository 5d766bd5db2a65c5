"""Tiny synthetic event frames for the training tests (not for accuracy claims), served under a dataset name.

Class ``c`` is a small blob of ON events drifting in direction ``c`` over the T frames, with OFF events
trailing it and random background events. Samples are fixed by ``(seed, index)``; the two contrastive views
add random shifts and event drop drawn from the global torch RNG, like real augmentations do.
:func:`synthetic_dataset` makes the training commands (through ``neuromoco.train.engine.loaders``) see it as a
dataset for as long as the context lasts.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from torch.utils.data import Dataset

from neuromoco.train.engine import loaders as D


class SyntheticFrames(Dataset):
    def __init__(self, n: int = 64, time_steps: int = 4, size: int = 16, num_classes: int = 4, seed: int = 0,
                 downsample: int = 1) -> None:
        self.n, self.t, self.size, self.k, self.seed = n, time_steps, size // max(1, downsample), num_classes, seed
        self.targets = [i % num_classes for i in range(n)]

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + i)
        c = self.targets[i]
        s = self.size
        x = (torch.rand(self.t, 2, s, s, generator=g) < 0.02).float()
        ang = 2 * math.pi * c / self.k
        cy, cx = s / 2 + torch.randn(2, generator=g).tolist()[0], s / 2 + torch.randn(2, generator=g).tolist()[1]
        for t in range(self.t):
            y = round(cy + (t - self.t / 2) * 1.5 * math.sin(ang)) % s
            xx = round(cx + (t - self.t / 2) * 1.5 * math.cos(ang)) % s
            x[t, 0, max(0, y - 1):y + 2, max(0, xx - 1):xx + 2] += 1.0
            x[t, 1, max(0, y - 2):y + 1, max(0, xx - 2):xx + 1] += 1.0
        return x, c


class TwoViews(Dataset):
    def __init__(self, base: SyntheticFrames) -> None:
        self.base = base
        self.targets = base.targets

    def __len__(self) -> int:
        return len(self.base)

    @staticmethod
    def _augment(x: torch.Tensor) -> torch.Tensor:
        dy, dx = torch.randint(-2, 3, (2,)).tolist()
        x = torch.roll(x, shifts=(dy, dx), dims=(-2, -1))
        if torch.rand(()) < 0.5:
            x = x.flip(-1)
        return x * (torch.rand_like(x) > 0.1)

    def __getitem__(self, i: int):
        x, c = self.base[i]
        return (self._augment(x), self._augment(x)), c


@contextlib.contextmanager
def synthetic_dataset(name: str = "synthetic", n_train: int = 64, n_test: int = 32, size: int = 16,
                      num_classes: int = 4, seed: int = 0) -> Iterator[str]:
    """Serve :class:`SyntheticFrames` as dataset ``name`` to ``D.labelled``, ``D.contrastive`` and
    ``D.metadata`` inside the context (other names go to the real datasets); yields ``name``."""
    real_labelled, real_contrastive, real_metadata = D.labelled, D.contrastive, D.metadata

    def frames(split: str, time_steps: int, downsample: int) -> SyntheticFrames:
        n = n_train if split == "train" else n_test
        return SyntheticFrames(n, time_steps, size, num_classes, seed + (split != "train") * 7919, downsample)

    def labelled(dataset: str, split: str, **kw: Any) -> Dataset:
        if dataset != name:
            return real_labelled(dataset, split, **kw)
        return frames(split, kw.get("time_steps", 16), kw.get("downsample", 1))  # augment: not simulated

    def contrastive(dataset: str, split: str = "train", **kw: Any) -> Dataset:
        if dataset != name:
            return real_contrastive(dataset, split, **kw)
        return TwoViews(frames(split, kw.get("time_steps", 16), kw.get("downsample", 1)))

    def metadata(dataset: str) -> dict[str, Any]:
        if dataset != name:
            return real_metadata(dataset)
        return {"num_classes": num_classes, "class_names": [f"class{i}" for i in range(num_classes)],
                "sensor_size": [size, size, 2]}

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(D, "labelled", labelled)
        mp.setattr(D, "contrastive", contrastive)
        mp.setattr(D, "metadata", metadata)
        yield name
