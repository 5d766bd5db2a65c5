"""PNG pictures of what the network sees: each sample's T frames in a row, ON events orange, OFF blue."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ON_COLOUR = np.array([1.0, 0.55, 0.05])
OFF_COLOUR = np.array([0.15, 0.55, 1.0])


def frames_to_rgb(frames: np.ndarray, scale: float | None = None) -> np.ndarray:
    """``[T, 2, H, W]`` counts (channel 0 OFF, 1 ON) -> ``[T, H, W, 3]`` RGB in [0, 1] on black."""
    frames = np.asarray(frames, dtype=np.float32)
    if scale is None:
        nonzero = frames[frames > 0]
        scale = float(np.percentile(nonzero, 98)) if nonzero.size else 1.0
    off = np.clip(frames[:, 0] / scale, 0, 1)[..., None]
    on = np.clip(frames[:, -1] / scale, 0, 1)[..., None] if frames.shape[1] > 1 else 0 * off
    return np.clip(on * ON_COLOUR + off * OFF_COLOUR, 0, 1)


def render_rows(rows: Sequence[np.ndarray], titles: Sequence[str], path: str | Path,
                suptitle: str = "", frame_ms: Sequence[float] | None = None) -> Path:
    """One row of frames per entry of ``rows`` (each ``[T, C, H, W]``), written to ``path`` as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_rows, n_t = len(rows), max(r.shape[0] for r in rows)
    fig, axes = plt.subplots(n_rows, n_t, figsize=(1.25 * n_t + 1.6, 1.35 * n_rows + 0.7), squeeze=False)
    for r, (frames, title) in enumerate(zip(rows, titles, strict=True)):  # one title per row
        rgb = frames_to_rgb(frames)
        for t in range(n_t):
            ax = axes[r, t]
            ax.set_xticks([])
            ax.set_yticks([])
            if t < len(rgb):
                ax.imshow(rgb[t], interpolation="nearest")
            else:
                ax.axis("off")
            if r == 0:
                ax.set_title(f"t{t}" if frame_ms is None else f"{frame_ms[t]:.0f} ms", fontsize=7)
        axes[r, 0].set_ylabel(title, fontsize=7, rotation=0, ha="right", va="center")
    fig.suptitle((suptitle + "   " if suptitle else "") + "ON events orange, OFF blue", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def file_stem(name: str) -> str:
    """A file-name part for a dataset: its name, a folder's last component, ``tonic_ClassName``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).name if "/" in name else name)


def render_dataset(name: str, out: str | Path, n: int = 4, split: str = "train", root: str | Path | None = None,
                   time_steps: int = 8, downsample: int = 1, views: bool = True, seed: int = 0) -> list[Path]:
    """Render ``n`` samples of a dataset (and, with ``views``, two contrastive views of each) as PNG files."""
    from neuromoco.train.data.augment import contrastive_augmentation
    from neuromoco.train.data.datasets import TwoViews, get_event_dataset
    from neuromoco.train.data.framing import frame_events

    events_ds = get_event_dataset(name, split, root)
    spec = events_ds.spec
    picks = _one_per_class(events_ds.labels, n)
    out = Path(out)
    stem = file_stem(spec.name)
    rows, titles = [], []
    for i in picks:
        ev, label = events_ds[i]
        rows.append(frame_events(ev, spec.sensor_size, time_steps, downsample))
        titles.append(f"#{i} '{spec.class_names[label]}'\n{len(ev)} events")
    span_ms = _span_ms(events_ds, picks[0]) if picks else 0.0
    frame_ms = [(t + 0.5) * span_ms / time_steps for t in range(time_steps)]
    written = [render_rows(rows, titles, out / f"{stem}_{split}_samples.png",
                           f"{spec.title}: {split} split, T={time_steps} bins (times: bin centres of #{picks[0]})",
                           frame_ms)]
    if views:
        aug = contrastive_augmentation(spec.sensor_size, "default", hflip=spec.hflip_preserves_label)
        two = TwoViews(events_ds, aug, None, time_steps, downsample, seed=seed)
        v_rows, v_titles = [], []
        for i in picks:
            q, k = two.views(i)
            class_name = spec.class_names[int(events_ds.labels[i])]
            v_rows += [q, k]
            v_titles += [f"#{i} '{class_name}'\nview q", f"#{i} '{class_name}'\nview k"]
        written.append(render_rows(v_rows, v_titles, out / f"{stem}_{split}_views.png",
                                   f"{spec.title}: two augmented views per sample (strength 'default')"))
    return written


def _span_ms(events_ds, index: int) -> float:
    t = events_ds.events(index)["t"]
    return float(t.max() - t.min()) / 1000.0 if len(t) else 0.0


def _one_per_class(labels: np.ndarray, n: int) -> list[int]:
    """The first sample of each class in turn, ``n`` in all (so a few samples show different classes)."""
    picks: list[int] = []
    classes = list(dict.fromkeys(int(c) for c in labels))
    rounds = 0
    while len(picks) < min(n, len(labels)):
        for c in classes:
            members = np.flatnonzero(labels == c)
            if rounds < len(members) and len(picks) < n:
                picks.append(int(members[rounds]))
        rounds += 1
    return picks
