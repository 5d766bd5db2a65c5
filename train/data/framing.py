"""Events -> frames ``[T, C, H, W]``: T time bins over the sample's span, C = 2 polarities (OFF, ON).

The bins are tonic's ``ToFrame(sensor_size, n_time_bins=T)`` bins: bin width ``(t_last - t_first) // T``
starting at the first event. tonic drops the events after the T-th window (``t >= t_first + T * width``,
always including the last event); here they go into the last bin, so every event is counted exactly once
and the frames sum to the number of events. Apart from that tail the frames are tonic's, which
``tests/test_data_framing.py`` checks against tonic itself. The counting is one ``np.bincount``
(tonic loops over bins with ``np.add.at``), which matters when augmented views are framed per sample.

Spatial downsampling by an integer factor ``f`` sums pixels: an event at ``(x, y)`` lands on
``(x // f, y // f)`` of a ``ceil(W / f) x ceil(H / f)`` grid. That is sum-pooling the full-resolution
frames over ``f x f`` blocks (the same as ``tonic.transforms.Downsample(spatial_factor=1/f)`` followed by
integer truncation), so no event is lost and frame counts still sum to the number of events.
"""

from __future__ import annotations

import numpy as np

#: bump when the framing changes, so cached frames are rebuilt
FRAMING_VERSION = 1


def downsampled_size(sensor_size: tuple[int, int, int], downsample: int) -> tuple[int, int, int]:
    w, h, p = sensor_size
    f = int(downsample)
    return (-(-w // f), -(-h // f), p)


def frame_shape(sensor_size: tuple[int, int, int], time_steps: int, downsample: int = 1) -> tuple[int, int, int, int]:
    w, h, p = downsampled_size(sensor_size, downsample)
    return (int(time_steps), p, h, w)


def time_bins(t: np.ndarray, time_steps: int) -> np.ndarray:
    """Bin index in ``[0, T)`` of each timestamp, with tonic's ``n_time_bins`` layout (tail into the last bin)."""
    t = np.asarray(t, dtype=np.int64)
    if t.size == 0:
        return np.zeros(0, dtype=np.int64)
    t0 = t.min()
    span = int(t.max() - t0)
    width = span // time_steps
    if width > 0:
        return np.minimum((t - t0) // width, time_steps - 1)
    return (t - t0) * time_steps // (span + 1)  # span shorter than T microseconds


def frame_events(events: np.ndarray, sensor_size: tuple[int, int, int], time_steps: int,
                 downsample: int = 1) -> np.ndarray:
    """Event counts ``[T, P, H, W]`` (float32) of a structured event array with fields x, y, t, p."""
    f = int(downsample)
    if f < 1:
        raise ValueError(f"downsample must be a positive integer, got {downsample}")
    t_steps, n_pol, h, w = frame_shape(sensor_size, time_steps, f)
    if len(events) == 0:
        return np.zeros((t_steps, n_pol, h, w), dtype=np.float32)
    x = np.asarray(events["x"], dtype=np.int64) // f
    y = np.asarray(events["y"], dtype=np.int64) // f
    p = np.asarray(events["p"], dtype=np.int64) if n_pol > 1 else np.zeros(len(events), dtype=np.int64)
    if x.min() < 0 or y.min() < 0 or x.max() >= w or y.max() >= h or p.min() < 0 or p.max() >= n_pol:
        raise ValueError(f"events outside the sensor {tuple(sensor_size)}: x in [{x.min()}, {x.max()}], "
                         f"y in [{y.min()}, {y.max()}], p in [{p.min()}, {p.max()}] (after downsample {f})")
    b = time_bins(events["t"], t_steps)
    index = ((b * n_pol + p) * h + y) * w + x
    counts = np.bincount(index, minlength=t_steps * n_pol * h * w)
    return counts.reshape(t_steps, n_pol, h, w).astype(np.float32)
