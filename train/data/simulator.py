"""An event-camera (DVS) simulator that turns still images into N-MNIST-style event streams.

The embedded dataset (:mod:`neuromoco.train.data.embedded`) runs the 1,797 handwritten digits that scikit-learn
ships (8x8 images, grey levels 0..16) through this simulator, in the manner N-MNIST was recorded
(Orchard et al. 2015, "Converting static image datasets to spiking neuromorphic datasets using
saccades"): a static image in front of an event camera that moves through three saccades.

Scene and optics
    The 8x8 digit is magnified 3x onto a 24x24-pixel patch (``digit_size``) centred on a 34x34 sensor
    (N-MNIST's sensor size), by bilinear interpolation, then blurred by a Gaussian point-spread
    function (``psf_sigma`` pixels). scikit-learn's 8x8 box is the digit's tight bounding box, whereas
    an MNIST 28x28 image holds a ~20x20 digit inside a 4-pixel margin: 24 pixels gives ink of the size
    N-MNIST shows and keeps it on the sensor through the 7-pixel saccades. Ink ``a`` in [0, 1] sets the
    irradiance ``I = bg + (1 - bg) * a``: a bright digit on a dark screen, as N-MNIST's LCD showed them.
    Magnification, shift and blur are linear and separable, so the image at every tick is
    ``My(t) @ X @ Mx(t).T`` for small per-axis matrices, vectorised over many digits at once.

Motion
    Three saccades of ``saccade_ms`` each along the triangle N-MNIST's pan-tilt unit traced
    (vertices (0, 0) -> (3.5, 7) -> (7, 0) -> (0, 0) pixels in x, y, the path that tonic's
    ``nmnist.stabilize`` undoes), centred on the sensor, at constant speed within each saccade.

Pixel model (per pixel, per simulation tick of ``tick_us``)
    * log intensity ``L = ln(I)``; the pixel remembers ``ref``, the log intensity at its last event;
    * ON event when ``L - ref >= C_on``, OFF event when ``ref - L >= C_off``; a change of ``n`` thresholds
      within one tick gives ``n`` events (at most ``max_events_per_tick``), and ``ref`` moves by ``n``
      thresholds;
    * event timestamps are the linearly interpolated times at which ``L`` crossed each level, plus a
      Gaussian latency jitter (``jitter_us``);
    * threshold mismatch: ``C_on`` and ``C_off`` are drawn per pixel (fixed-pattern noise, the same
      for every sample, as on one physical sensor) from N(``threshold``, ``threshold_sigma``);
    * refractory period: a crossing less than ``refractory_us`` after the pixel's previous event
      emits nothing (the change is lost, as when the pixel is held in reset);
    * each pixel starts with ``ref`` offset by a random fraction of its threshold (pixels are not
      synchronised when the recording starts);
    * background activity: Poisson noise events at ``noise_hz`` per pixel, random polarity, uniform
      in time and position (the leak and shot noise of real DVS pixels).

Defaults (:class:`SimulatorConfig`): 1 ms ticks, 3 x 100 ms saccades, contrast threshold 0.45 ln units
with 0.04 mismatch, background 0.15 (an edge of ln(1/0.15) = 1.9 ln units, about four events per pixel
it sweeps), blur 0.6 pixel, refractory period 1 ms (enforced before the jitter), jitter 50 us, noise
0.2 Hz per pixel (about 70 events per sample). About 2,900 events per sample; 1,797 digits in about
10 s on one core.

MNIST digits at their own resolution (:data:`MNIST_CONFIG`, the ``embedded-mnist`` dataset)
    A 28x28 MNIST image is placed centred on the 34x34 sensor one image pixel per sensor pixel
    (``digit_size = 28``: no magnification, as N-MNIST's monitor showed each MNIST pixel on one sensor
    pixel), with the same blur, saccades and pixel model; only the sub-pixel saccade shifts interpolate.

Output: tonic's structured event array (fields ``x``, ``y``, ``t``, ``p`` as in tonic's NMNIST; ``t``
in microseconds, sorted; ``p`` = 1 ON, 0 OFF). Every random draw comes from a generator seeded by
``(seed, sample index)``, so a sample is the same whatever the batch it was generated in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

#: tonic's NMNIST event dtype: x, y, t (microseconds), p (0 OFF, 1 ON), all int64
EVENT_DTYPE = np.dtype([("x", "<i8"), ("y", "<i8"), ("t", "<i8"), ("p", "<i8")])

#: N-MNIST's saccade triangle (pixels, x and y), from tonic.datasets.nmnist.stabilize
SACCADE_VERTICES = np.array([[0.0, 0.0], [3.5, 7.0], [7.0, 0.0], [0.0, 0.0]])


@dataclass(frozen=True)
class SimulatorConfig:
    """The simulator's parameters (their meaning is in the module docstring)."""

    sensor: int = 34  # sensor width = height, pixels
    digit_size: float = 24.0  # the image's side on the sensor, pixels (see "Scene and optics")
    psf_sigma: float = 0.6  # optical blur, pixels
    background: float = 0.15  # screen irradiance where there is no ink (ink = 1 gives 1.0)
    saccade_ms: float = 100.0  # duration of each of the three saccades
    tick_us: int = 1000  # simulation tick
    threshold: float = 0.45  # mean contrast threshold, ln units
    threshold_sigma: float = 0.04  # pixel-to-pixel threshold mismatch (std), ln units
    refractory_us: int = 1000  # refractory period
    max_events_per_tick: int = 4  # threshold crossings one pixel may emit in one tick
    jitter_us: float = 50.0  # timestamp latency jitter (std)
    noise_hz: float = 0.2  # background activity per pixel
    mismatch_seed: int = 1234  # seed of the fixed-pattern threshold mismatch (the "sensor")

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def duration_us(self) -> int:
        return round(3 * self.saccade_ms * 1000)


DEFAULT_CONFIG = SimulatorConfig()
#: 28x28 MNIST digits at their own resolution on the 34x34 sensor (everything else as the default)
MNIST_CONFIG = SimulatorConfig(digit_size=28.0)


def saccade_offset(t_us: np.ndarray, cfg: SimulatorConfig) -> np.ndarray:
    """Image displacement ``[..., 2]`` (x, y pixels) at times ``t_us``, centred on the triangle's middle."""
    s = np.clip(np.asarray(t_us, dtype=np.float64) / (cfg.saccade_ms * 1000.0), 0.0, 3.0)
    k = np.minimum(s.astype(int), 2)
    frac = (s - k)[..., None]
    pos = SACCADE_VERTICES[k] * (1 - frac) + SACCADE_VERTICES[k + 1] * frac
    centre = (SACCADE_VERTICES.min(0) + SACCADE_VERTICES.max(0)) / 2
    return pos - centre


def _axis_operator(shift: float, n_src: int, cfg: SimulatorConfig) -> np.ndarray:
    """``[sensor, n_src]`` matrix: source pixels -> sensor pixels for one axis (magnify, shift, blur)."""
    pad = int(np.ceil(4 * cfg.psf_sigma)) + 1
    n_ext = cfg.sensor + 2 * pad
    centres = np.arange(n_ext) - pad + 0.5  # sensor pixel centres, extended by the blur's reach
    origin = (cfg.sensor - cfg.digit_size) / 2 + shift
    u = (centres - origin) * (n_src / cfg.digit_size) - 0.5  # in source-pixel index units
    j0 = np.floor(u).astype(int)
    w = u - j0
    m = np.zeros((n_ext, n_src))
    for j, wj in ((j0, 1 - w), (j0 + 1, w)):
        ok = (j >= 0) & (j < n_src)
        m[np.flatnonzero(ok), j[ok]] += wj[ok]
    if cfg.psf_sigma > 0:
        d = np.arange(n_ext)[:, None] - np.arange(n_ext)[None, :]
        g = np.exp(-0.5 * (d / cfg.psf_sigma) ** 2)
        g /= g.sum(1, keepdims=True)
        m = g @ m
    return m[pad:pad + cfg.sensor]


#: ``simulate(..., flush_below=FLUSH_BELOW)`` sets operator weights below this to 0. The blur's far tails
#: underflow to float32 denormals, which make every product with them some 20x slower on x86; dropping them
#: moves a few timestamps of a few samples by rounding, so it is off by default (the ``embedded`` dataset's
#: events stay those it was generated with) and on for ``embedded-mnist`` (recorded in its file's metadata).
FLUSH_BELOW = 1e-12


def _flush(m: np.ndarray, below: float) -> np.ndarray:
    if below > 0:
        m[np.abs(m) < below] = 0
    return m


def _thresholds(cfg: SimulatorConfig) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(cfg.mismatch_seed)
    shape = (cfg.sensor * cfg.sensor,)
    lo = 0.25 * cfg.threshold
    c_on = np.maximum(rng.normal(cfg.threshold, cfg.threshold_sigma, shape), lo)
    c_off = np.maximum(rng.normal(cfg.threshold, cfg.threshold_sigma, shape), lo)
    return c_on.astype(np.float32), c_off.astype(np.float32)


def simulate(images: np.ndarray, seeds: np.ndarray | Sequence[int | tuple[int, ...]],
             cfg: SimulatorConfig = DEFAULT_CONFIG, chunk: int = 128, flush_below: float = 0.0) -> list[np.ndarray]:
    """Event streams for ``images`` ``[N, h, w]`` with ink in [0, 1]; sample ``i`` draws from ``seeds[i]``
    (``flush_below``: see :data:`FLUSH_BELOW`; 0 keeps every operator weight)."""
    images = np.asarray(images, dtype=np.float64)
    out: list[np.ndarray] = []
    for start in range(0, len(images), chunk):
        out.extend(_simulate_chunk(images[start:start + chunk], list(seeds[start:start + chunk]), cfg,
                                   flush_below))
    return out


def _simulate_chunk(images: np.ndarray, seeds: list, cfg: SimulatorConfig,
                    flush_below: float = 0.0) -> list[np.ndarray]:
    b, h, w = images.shape
    s = cfg.sensor
    npx = s * s
    rngs = [np.random.default_rng(seed) for seed in seeds]
    c_on, c_off = _thresholds(cfg)
    n_ticks = round(cfg.duration_us / cfg.tick_us)
    times = np.arange(n_ticks + 1) * cfg.tick_us
    shifts = saccade_offset(times, cfg)
    x_img = images.astype(np.float32)
    bg = np.float32(cfg.background)

    def log_image(k: int) -> np.ndarray:
        my = _flush(_axis_operator(shifts[k, 1], h, cfg).astype(np.float32), flush_below)
        mx = _flush(_axis_operator(shifts[k, 0], w, cfg).astype(np.float32), flush_below)
        ink = np.clip(my @ x_img @ mx.T, 0.0, 1.0)  # [b, s, s]
        return np.log(bg + (1 - bg) * ink).reshape(b, npx)

    l_prev = log_image(0)
    u0 = np.stack([r.uniform(-0.5, 0.5, npx) for r in rngs]).astype(np.float32)
    ref = l_prev + u0 * c_on[None]
    t_last = np.full((b, npx), -10 ** 9, dtype=np.float64)
    ev_b, ev_px, ev_t, ev_p = [], [], [], []
    for k in range(1, n_ticks + 1):
        l_now = log_image(k)
        d = l_now - ref
        fire = np.flatnonzero((d >= c_on[None]) | (d <= -c_off[None]))
        if fire.size:
            bi, px = np.divmod(fire, npx)
            di = d.ravel()[fire]
            on = di > 0
            thr = np.where(on, c_on[px], c_off[px])
            sign = np.where(on, 1.0, -1.0).astype(np.float32)
            n = np.minimum(np.floor(np.abs(di) / thr), cfg.max_events_per_tick).astype(int)
            l0 = l_prev.ravel()[fire]
            slope = l_now.ravel()[fire] - l0
            slope = np.where(np.abs(slope) < 1e-9, 1e-9, slope)
            r0 = ref.ravel()[fire]
            tl = t_last.ravel()[fire]
            for j in range(1, int(n.max()) + 1):
                level = r0 + sign * j * thr
                frac = np.clip((level - l0) / slope, 0.0, 1.0)
                tau = times[k - 1] + frac * cfg.tick_us
                ok = (n >= j) & (tau >= tl + cfg.refractory_us)
                ev_b.append(bi[ok])
                ev_px.append(px[ok])
                ev_t.append(tau[ok])
                ev_p.append(on[ok])
                tl = np.where(ok, tau, tl)
            ref.ravel()[fire] = r0 + sign * n * thr
            t_last.ravel()[fire] = tl
        l_prev = l_now

    eb = np.concatenate(ev_b) if ev_b else np.zeros(0, int)
    epx = np.concatenate(ev_px) if ev_px else np.zeros(0, int)
    et = np.concatenate(ev_t) if ev_t else np.zeros(0)
    ep = np.concatenate(ev_p) if ev_p else np.zeros(0, bool)
    order = np.argsort(eb, kind="stable")
    eb, epx, et, ep = eb[order], epx[order], et[order], ep[order]
    bounds = np.searchsorted(eb, np.arange(b + 1))
    result = []
    for i, rng in enumerate(rngs):
        sl = slice(bounds[i], bounds[i + 1])
        px, t, p = epx[sl], et[sl], ep[sl]
        n_noise = rng.poisson(cfg.noise_hz * npx * cfg.duration_us * 1e-6)
        px = np.concatenate([px, rng.integers(0, npx, n_noise)])
        t = np.concatenate([t + rng.normal(0.0, cfg.jitter_us, t.size), rng.uniform(0, cfg.duration_us, n_noise)])
        p = np.concatenate([p, rng.random(n_noise) < 0.5])
        t = np.clip(np.rint(t), 0, cfg.duration_us).astype(np.int64)
        order = np.argsort(t, kind="stable")
        ev = np.empty(t.size, dtype=EVENT_DTYPE)
        ev["x"] = px[order] % s
        ev["y"] = px[order] // s
        ev["t"] = t[order]
        ev["p"] = p[order]
        result.append(ev)
    return result
