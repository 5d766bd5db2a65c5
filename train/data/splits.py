"""Deterministic, seeded, per-class splits and label subsets.

Where a dataset defines no train/test split (CIFAR10-DVS, N-Caltech101, the embedded digits) the test set
is ``round(0.1 * n_c)`` samples of every class ``c`` (at least one), drawn by a generator seeded with
``(seed, c)``: the same split on every machine, and a class's split does not move when another class
changes. ``stratified_subset`` draws the labelled fraction for few-label training the same way.
"""

from __future__ import annotations

import numpy as np

SPLIT_SEED = 0
TEST_FRACTION = 0.1


def stratified_split(labels: np.ndarray, test_fraction: float = TEST_FRACTION,
                     seed: int = SPLIT_SEED) -> dict[str, np.ndarray]:
    """``{"train": indices, "test": indices}`` (sorted) with ``test_fraction`` of each class in test."""
    labels = np.asarray(labels)
    test = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        n_test = min(max(1, round(test_fraction * len(members))), len(members) - 1) if len(members) > 1 else 0
        perm = np.random.default_rng([seed, int(c)]).permutation(members)
        test.append(perm[:n_test])
    test_idx = np.sort(np.concatenate(test)) if test else np.zeros(0, dtype=np.int64)
    train_mask = np.ones(len(labels), dtype=bool)
    train_mask[test_idx] = False
    return {"train": np.flatnonzero(train_mask), "test": test_idx.astype(np.int64)}


def stratified_subset(labels: np.ndarray, fraction: float, seed: int = SPLIT_SEED) -> np.ndarray:
    """Sorted indices of ``fraction`` of each class (at least one per class), e.g. for 1% / 10% labels."""
    labels = np.asarray(labels)
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if fraction == 1:
        return np.arange(len(labels))
    keep = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        n = max(1, round(fraction * len(members)))
        keep.append(np.random.default_rng([seed, 1, int(c)]).permutation(members)[:n])
    return np.sort(np.concatenate(keep))


def split_parts(split: str, official: bool) -> list[str]:
    """The parts of a dataset's files that ``split`` reads: its official part (both for ``"all"``), or every
    file (``"all"``) when the split is the seeded 9:1 one."""
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    if not official:
        return ["all"]
    return ["train", "test"] if split == "all" else [split]


def select_split(part_labels: list[np.ndarray], split: str, official: bool) -> tuple[list[tuple[int, int]], np.ndarray]:
    """``(part, index)`` of every sample of ``split`` and their labels, from the labels of the parts read
    (:func:`split_parts`); without an official split the seeded stratified split picks them."""
    index = [(k, i) for k, labels in enumerate(part_labels) for i in range(len(labels))]
    labels = np.concatenate(part_labels).astype(np.int64) if part_labels else np.zeros(0, dtype=np.int64)
    if not official and split != "all":
        keep = stratified_split(labels, seed=SPLIT_SEED)[split]
        index, labels = [index[i] for i in keep], labels[keep]
    return index, labels
