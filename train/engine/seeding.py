"""Seeds for reproducibility.

Every epoch re-seeds all generators from ``(seed, epoch, rank)``: what happens in epoch e (data order,
augmentations, batch shuffles) then depends on nothing that came before it, so a run resumed after epoch e-1
repeats epoch e exactly as an uninterrupted run does (the resume test checks identical losses).
"""

from __future__ import annotations

import random

import numpy as np
import torch


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    return (int(seed) * 1_000_003 + int(epoch) * 10_007 + int(rank) * 101) % (2**31 - 1)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: numpy and ``random`` follow the worker's torch seed (which the loader's
    generator fixes), so augmentations in workers are reproducible too."""
    s = torch.initial_seed() % (2**32)
    np.random.seed(s)
    random.seed(s)


def loader_generator(seed: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(seed)
    return g
