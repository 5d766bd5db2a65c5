"""The samples a job runs on: frames ``[N, T, *input_shape]`` with labels, from an array, a frames ``.npz`` or a
dataset name (default: the model card's dataset); batching and progress bars for the jobs."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from neuromoco.errors import UserError

if TYPE_CHECKING:
    from neuromoco.deploy.card import ModelCard

#: the splits every dataset has (``all``: the whole set, where a dataset's recipe is one set)
SPLITS = ("train", "test", "all")

def load_samples(card: ModelCard, dataset: str | None = None, split: str = "test", root: str | None = None,
                 limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Frames ``[N, T, *input_shape]`` and labels of ``dataset`` (a name or a frames ``.npz``; default the model
    card's) over ``split`` (several joined with commas), the first ``limit`` of them; never empty."""
    from neuromoco.deploy.datasets import load_frames

    splits = [s.strip() for s in split.split(",") if s.strip()]
    if not splits:
        raise UserError("--split names no split")
    if len(splits) > 1 and dataset and dataset.endswith(".npz"):
        raise UserError(f"--split {split}: a frames .npz file has no splits; it is used whole")
    parts = [load_frames(card, dataset, s, root, limit) for s in splits]
    frames = parts[0][0] if len(parts) == 1 else np.concatenate([f for f, _ in parts])
    labels = parts[0][1] if len(parts) == 1 else np.concatenate([lab for _, lab in parts])
    if limit is not None:
        frames, labels = frames[:limit], labels[:limit]
    if len(frames) == 0:
        raise UserError("the dataset split holds no samples")
    return frames, labels


def resolve_samples(card: ModelCard, frames: Any = None, labels: Any = None, *, split: str = "test",
                    root: str | None = None, limit: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """The API's ``frames`` argument as ``(frames [N, T, *input_shape] float32, labels [N] or None)``.

    ``frames`` is a numpy array ``[N, T, *input_shape]`` (samples first: the ``.npz`` layout), a frames ``.npz``
    path or a dataset name (``split``, ``root`` apply), or None for the model card's dataset. Anything that could
    be read two ways is refused in one line rather than guessed: an array with the time axis first, one sample
    without its sample axis, ``labels`` beside a dataset (it has its own), a path that is not a frames ``.npz``.
    """
    from pathlib import Path

    from neuromoco.deploy.datasets import check_finite_frames
    from neuromoco.deploy.graph.shapes import check_frames_shape

    if frames is None or isinstance(frames, str | Path):
        if labels is not None:
            raise UserError("labels= goes with an array of frames; a dataset or frames .npz brings its own labels")
        name = None if frames is None else str(frames)
        if name is not None and Path(name).exists() and not name.endswith(".npz"):
            raise UserError(f"frames {name!r} is a path but not a frames .npz file (arrays 'frames' "
                            "[N, T, *input_shape] and 'labels' [N]); name a dataset or an .npz")
        return load_samples(card, name, split, root, limit)
    if not isinstance(frames, np.ndarray):
        raise UserError(f"frames must be a numpy array [N, T, *input_shape], a frames .npz path or a dataset name, "
                        f"not {type(frames).__name__}")
    shape, t, want = list(frames.shape), int(card.time_steps), list(card.input_shape)
    if frames.ndim < 3:
        raise UserError(f"frames of shape {shape} are not [N, T, *input_shape] = [N, {t}, {', '.join(map(str, want))}]")
    if frames.ndim == len(want) + 1 and list(frames.shape[1:]) == want:
        raise UserError(f"frames of shape {shape} look like one sample [T, *input_shape]; the API takes "
                        "[N, T, *input_shape]: pass frames[None]")
    if shape[0] == t and shape[1] != t:
        raise UserError(f"frames of shape {shape} look like [T, N, ...] (time first); the API takes [N, T, "
                        f"*input_shape] (samples first, as in a frames .npz): pass frames.swapaxes(0, 1)")
    check_frames_shape(frames.shape[2:], tuple(want), f"the input shape of {card.source}")
    out = np.asarray(frames, dtype=np.float32)[:limit]
    check_finite_frames(out, "frames")
    if labels is not None:
        labels = np.asarray(labels, dtype=np.int64)[:limit]
        if labels.shape != out.shape[:1]:
            raise UserError(f"{len(out)} samples of frames but labels of shape {list(labels.shape)}")
    if len(out) == 0:
        raise UserError("frames hold no samples")
    return out, labels


def frames_label(card: ModelCard, frames: Any) -> str:
    """How a report names the API's ``frames``: the dataset name or path, or ``array`` for frames given as one."""
    from pathlib import Path

    if frames is None:
        return str(card.dataset.get("name", ""))
    return str(frames) if isinstance(frames, str | Path) else "array"


def batches(frames: np.ndarray, labels: np.ndarray | None, size: int) -> Iterator[tuple[np.ndarray, Any]]:
    """``(frames [T, B, ...], labels [B] or None)`` batches of ``frames [N, T, ...]``."""
    if size < 1:
        raise UserError("--batch-size must be at least 1")
    for i in range(0, len(frames), size):
        yield (np.ascontiguousarray(np.swapaxes(frames[i:i + size], 0, 1)),
               None if labels is None else labels[i:i + size])


def progress_bar(total: int, desc: str, enabled: bool = True, targets: list[str] | None = None) -> Any:
    """A tqdm bar on stderr, or None when disabled.

    The ``before_progress`` hook of each of ``targets`` (the targets the job runs) runs first: Lava's
    runtime sets the multiprocessing start method at import, which fails once tqdm's first bar has fixed it.
    """
    if not enabled:
        return None
    from tqdm import tqdm

    from neuromoco.deploy.targets import prepare_progress

    prepare_progress(targets or [])
    return tqdm(total=total, desc=desc, unit="sample", file=sys.stderr, leave=False, disable=None)
