"""Event augmentations for the two contrastive views: small composable callables on event arrays.

Each transform works on a structured event array (fields x, y, t, p; see :mod:`neuromoco.train.data.base`) *before*
framing, is called as ``transform(events, rng)`` with ``rng`` a ``np.random.Generator`` or an int seed
(same seed, same output), never changes the label, and returns events inside the sensor: geometric
transforms drop what they move off it. They follow tonic's transforms (a frozen dataclass holding the
parameters, ``sensor_size`` as (W, H, P)), but draw from the generator they are given instead of numpy's
global state, so a view is reproducible from its seed and DataLoader workers never share a stream.

Geometric transforms that resample (crop-resize, rotation) place each event at a uniformly random point
inside its pixel before mapping it, then take the pixel the point lands in, so an enlarged region is
filled evenly instead of leaving a grid of empty pixels.

Temporal crop keeps a random window (random length and position) of the recording. Because framing bins
the span of the events it is given (:mod:`neuromoco.train.data.framing`), the kept window is stretched over all T
bins: a crop is a random temporal zoom and shift in one, which is why there is no separate shift.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

Rng = np.random.Generator | int | None
Range = tuple[float, float]


def as_rng(rng: Rng) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def _uniform(rng: np.random.Generator, value: float | Range) -> float:
    if isinstance(value, (tuple, list)):
        return float(rng.uniform(value[0], value[1]))
    return float(value)


class EventTransform:
    """Base: ``transform(events, rng=None) -> events``; subclasses implement :meth:`apply`."""

    def __call__(self, events: np.ndarray, rng: Rng = None) -> np.ndarray:
        return self.apply(events, as_rng(rng))

    def apply(self, events: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError


@dataclass(frozen=True)
class Compose(EventTransform):
    transforms: Sequence[EventTransform] = ()

    def apply(self, events, rng):
        for transform in self.transforms:
            events = transform(events, rng)
        return events


@dataclass(frozen=True)
class RandomApply(EventTransform):
    transform: EventTransform
    p: float = 0.5

    def apply(self, events, rng):
        return self.transform(events, rng) if rng.random() < self.p else events


@dataclass(frozen=True)
class RandomChoice(EventTransform):
    """One of ``transforms``, chosen uniformly (``None`` in the list: leave the events as they are)."""

    transforms: Sequence[EventTransform | None] = ()

    def apply(self, events, rng):
        chosen = self.transforms[int(rng.integers(len(self.transforms)))]
        return events if chosen is None else chosen(events, rng)


@dataclass(frozen=True)
class RandomHorizontalFlip(EventTransform):
    sensor_size: tuple[int, int, int]
    p: float = 0.5

    def apply(self, events, rng):
        if rng.random() >= self.p:
            return events
        out = events.copy()
        out["x"] = self.sensor_size[0] - 1 - events["x"]
        return out


@dataclass(frozen=True)
class RandomResizedCrop(EventTransform):
    """Keep a random box (``scale`` of the sensor's area, aspect ``ratio``) and stretch it over the sensor."""

    sensor_size: tuple[int, int, int]
    scale: Range = (0.5, 1.0)
    ratio: Range = (3 / 4, 4 / 3)

    def box(self, rng: np.random.Generator) -> tuple[int, int, int, int]:
        w_s, h_s = self.sensor_size[:2]
        area = w_s * h_s
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = area * rng.uniform(*self.scale)
            aspect = math.exp(rng.uniform(*log_ratio))
            w = round(math.sqrt(target * aspect))
            h = round(math.sqrt(target / aspect))
            if 0 < w <= w_s and 0 < h <= h_s:
                return int(rng.integers(0, w_s - w + 1)), int(rng.integers(0, h_s - h + 1)), w, h
        return 0, 0, w_s, h_s

    def apply(self, events, rng):
        x0, y0, w, h = self.box(rng)
        w_s, h_s = self.sensor_size[:2]
        x, y = events["x"], events["y"]
        out = events[(x >= x0) & (x < x0 + w) & (y >= y0) & (y < y0 + h)]  # a copy
        n = len(out)
        out["x"] = np.minimum(((out["x"] - x0 + rng.random(n)) * (w_s / w)).astype(np.int64), w_s - 1)
        out["y"] = np.minimum(((out["y"] - y0 + rng.random(n)) * (h_s / h)).astype(np.int64), h_s - 1)
        return out


@dataclass(frozen=True)
class RandomAffine(EventTransform):
    """Rotation by up to ``degrees`` about the sensor's centre and translation by up to ``translate``
    (a fraction of the width / height); events moved off the sensor are dropped."""

    sensor_size: tuple[int, int, int]
    degrees: float = 15.0
    translate: tuple[float, float] = (0.1, 0.1)

    def apply(self, events, rng):
        w_s, h_s = self.sensor_size[:2]
        angle = math.radians(rng.uniform(-self.degrees, self.degrees))
        tx = rng.uniform(-self.translate[0], self.translate[0]) * w_s
        ty = rng.uniform(-self.translate[1], self.translate[1]) * h_s
        n = len(events)
        xf = events["x"] + rng.random(n) - w_s / 2
        yf = events["y"] + rng.random(n) - h_s / 2
        c, s = math.cos(angle), math.sin(angle)
        x = np.floor(c * xf - s * yf + w_s / 2 + tx).astype(np.int64)
        y = np.floor(s * xf + c * yf + h_s / 2 + ty).astype(np.int64)
        keep = (x >= 0) & (x < w_s) & (y >= 0) & (y < h_s)
        out = events[keep]
        out["x"], out["y"] = x[keep], y[keep]
        return out


def RandomRotation(sensor_size: tuple[int, int, int], degrees: float = 15.0) -> RandomAffine:
    return RandomAffine(sensor_size, degrees=degrees, translate=(0.0, 0.0))


def RandomTranslation(sensor_size: tuple[int, int, int], translate: float = 0.1) -> RandomAffine:
    return RandomAffine(sensor_size, degrees=0.0, translate=(translate, translate))


@dataclass(frozen=True)
class DropRandom(EventTransform):
    """Drop each event with probability ``ratio`` (a value, or a range drawn from per call)."""

    ratio: float | Range = (0.1, 0.4)

    def apply(self, events, rng):
        return events[rng.random(len(events)) >= _uniform(rng, self.ratio)]


@dataclass(frozen=True)
class DropByTime(EventTransform):
    """Drop the events of a random time window, ``ratio`` of the recording's duration long."""

    ratio: float | Range = (0.1, 0.3)

    def apply(self, events, rng):
        if len(events) == 0:
            return events
        t0, t1 = int(events["t"].min()), int(events["t"].max())
        length = (t1 - t0) * _uniform(rng, self.ratio)
        start = rng.uniform(t0, t1 - length) if t1 - length > t0 else t0
        t = events["t"]
        return events[(t < start) | (t > start + length)]


@dataclass(frozen=True)
class DropByArea(EventTransform):
    """Drop the events inside a random box whose sides are ``ratio`` of the sensor's (event-space cutout)."""

    sensor_size: tuple[int, int, int]
    ratio: float | Range = (0.1, 0.3)

    def apply(self, events, rng):
        w_s, h_s = self.sensor_size[:2]
        r = _uniform(rng, self.ratio)
        w, h = max(1, int(w_s * r)), max(1, int(h_s * r))
        x0, y0 = int(rng.integers(0, w_s - w + 1)), int(rng.integers(0, h_s - h + 1))
        x, y = events["x"], events["y"]
        return events[~((x >= x0) & (x < x0 + w) & (y >= y0) & (y < y0 + h))]


def EventDrop(sensor_size: tuple[int, int, int], time_ratio: float | Range = (0.1, 0.3),
              area_ratio: float | Range = (0.1, 0.3), random_ratio: float | Range = (0.1, 0.4)) -> RandomChoice:
    """EventDrop (Gu et al. 2021): one of identity, drop by time, drop by area, drop at random."""
    return RandomChoice((None, DropByTime(time_ratio), DropByArea(sensor_size, area_ratio),
                         DropRandom(random_ratio)))


@dataclass(frozen=True)
class TemporalCrop(EventTransform):
    """Keep a random window of ``scale`` of the recording's duration, at a random position."""

    scale: Range = (0.6, 1.0)

    def apply(self, events, rng):
        if len(events) == 0:
            return events
        t0, t1 = int(events["t"].min()), int(events["t"].max())
        length = (t1 - t0) * rng.uniform(*self.scale)
        start = rng.uniform(t0, t1 - length) if t1 - length > t0 else t0
        t = events["t"]
        return events[(t >= start) & (t <= start + length)]


STRENGTHS = ("none", "weak", "default", "strong")


@dataclass(frozen=True)
class _Policy:
    crop_scale: Range
    affine_p: float
    degrees: float
    translate: float
    drop: Range
    temporal_p: float
    temporal_scale: Range = field(default=(0.6, 1.0))


_POLICIES = {
    "weak": _Policy(crop_scale=(0.8, 1.0), affine_p=0.3, degrees=5.0, translate=0.05, drop=(0.05, 0.15),
                    temporal_p=0.2, temporal_scale=(0.8, 1.0)),
    "default": _Policy(crop_scale=(0.5, 1.0), affine_p=0.5, degrees=15.0, translate=0.1, drop=(0.1, 0.3),
                       temporal_p=0.5),
    "strong": _Policy(crop_scale=(0.35, 1.0), affine_p=0.8, degrees=15.0, translate=0.15, drop=(0.15, 0.4),
                      temporal_p=0.8, temporal_scale=(0.5, 1.0)),
}


def contrastive_augmentation(sensor_size: tuple[int, int, int], strength: str = "default",
                             hflip: bool = True) -> Compose:
    """The view augmentation: random resized crop, horizontal flip (where it keeps the class), rotation
    and translation, EventDrop (none / time / area / random), temporal crop; ``strength`` scales them."""
    if strength not in STRENGTHS:
        raise ValueError(f"strength must be one of {', '.join(STRENGTHS)}, got {strength!r}")
    if strength == "none":
        return Compose(())
    pol = _POLICIES[strength]
    steps: list[EventTransform] = [RandomResizedCrop(sensor_size, scale=pol.crop_scale)]
    if hflip:
        steps.append(RandomHorizontalFlip(sensor_size))
    steps += [
        RandomApply(RandomAffine(sensor_size, pol.degrees, (pol.translate, pol.translate)), pol.affine_p),
        EventDrop(sensor_size, time_ratio=pol.drop, area_ratio=pol.drop, random_ratio=pol.drop),
        RandomApply(TemporalCrop(pol.temporal_scale), pol.temporal_p),
    ]
    return Compose(tuple(steps))
