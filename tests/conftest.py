"""Shared test set-up: every test starts from the same seeds, on CPU, with the checkout's ``data/`` as the data
folder (not the per-user cache a plain run defaults to) unless ``NEUROMOCO_DATA`` names another."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("NEUROMOCO_DATA", str(Path(__file__).resolve().parents[1] / "data"))


@pytest.fixture(autouse=True)
def _seed_everything() -> None:
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture
def terminal_bars(monkeypatch) -> list[object]:
    """Training's stderr made a terminal (where progress is drawn as bars), and the ``disable`` flag of every bar
    drawn from then on recorded in the returned list."""
    from neuromoco.train.engine import progress

    seen: list[object] = []
    real = progress.tqdm

    def recording(*a, **kw):
        seen.append(kw.get("disable"))
        return real(*a, **kw)

    monkeypatch.setattr(progress, "tqdm", recording)
    monkeypatch.setattr(progress, "stderr_is_terminal", lambda: True)
    return seen
