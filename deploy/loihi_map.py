"""A Loihi 2 core-mapping estimate from the Lava plan: cores needed, fit, the most loaded core per time step.

A model, not Intel's compiler: the limits and costs are data (``deploy/loihi2_cores.json``, each figure with
its source and whether it is published or assumed), the partition is greedy per layer (see the file's
``model`` list), and the per-step load comes from the measured spikes of a run.

A convolution kept as a shared :class:`~neuromoco.deploy.loihi.kernel.Kernel` is placed with weight sharing:
its layer is cut into tiles of channels x rows x columns and a tile stores its channels' kernel weights once.
The same plan is also placed without sharing (``expanded``: every synapse stored) for comparison. Nothing here
expands a kernel into a matrix: synapse counts, fan-in and the load come from the kernel's geometry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from neuromoco.deploy.loihi.kernel import Kernel
from neuromoco.deploy.result import RunResult

Weights = sp.csr_matrix | Kernel


def load_core_model() -> dict[str, Any]:
    """The packaged Loihi 2 limits, costs and model statements."""
    return json.loads(resources.files("neuromoco.deploy").joinpath("loihi2_cores.json").read_text())


def limit_values(model: dict[str, Any]) -> dict[str, float]:
    """``{name: value}`` of the limits and costs, with the synapses (and shared kernel weights) per core derived
    from the synaptic memory and the bits each takes."""
    v = {k: float(e["value"]) for part in ("limits", "costs") for k, e in model[part].items()}
    bits = v["synaptic_memory_bytes_per_core"] * 8
    v["synapses_per_core"] = float(int(bits // v["bits_per_synapse"]))
    v["shared_weights_per_core"] = float(int(bits // v.get("bits_per_shared_weight", v["bits_per_synapse"])))
    return v


# ------------------------------------------------------------------------------------- kernel geometry

def _inside(n_out: int, stride: int, before: int, k: int, size: int) -> np.ndarray:
    """``[n_out, k]``: 1 where output position ``i``'s tap ``j`` reads a real (not padded) input."""
    pos = np.arange(n_out)[:, None] * stride - before + np.arange(k)[None, :]
    return ((pos >= 0) & (pos < size)).astype(np.int64)


class ConvGeometry:
    """What the map needs of a kernel, without expanding it: synapses per target neuron, non-zero weights per
    output channel, and the distinct source neurons any set of its target neurons reads."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.nz = kernel.weight != 0  # [Co, Ci, kh, kw]
        co, _, kh, kw = self.nz.shape
        _, ho, wo = kernel.out_shape
        (he, we), (sh, sw), pad = kernel.extent, kernel.stride, kernel.pad
        ry, rx = _inside(ho, sh, pad[0], kh, he), _inside(wo, sw, pad[2], kw, we)
        # per target neuron (flat [Co, Ho, Wo]): sum over taps of (non-zero input channels x tap inside)
        self.synapses = np.einsum("cab,ya,xb->cyx", self.nz.sum(1), ry, rx, optimize=True).ravel()
        self.weights = self.nz.reshape(co, -1).sum(1)  # non-zero weights per output channel
        self.reads = self.nz.any(axis=(2, 3))  # [Co, Ci]: the input channels each output channel reads
        self.taps = self.nz.any(axis=0)  # [Ci, kh, kw]: the taps all output channels read together
        self._patterns: dict[tuple[int, int, int, int], np.ndarray] = {}  # tile_fan_in's summed-area tables

    def fan_in(self, neurons: np.ndarray) -> int:
        """Distinct source neurons that the target neurons ``neurons`` (flat ``[Co, Ho, Wo]`` indices) read:
        the windows of the positions holding each range of channels marked with that range's taps on the
        source image, then counted inside the (cropped) image (padding reads nothing). Blocks and tiles hold a
        channel range per position; other sets are marked channel by channel."""
        co, ho, wo = self.kernel.out_shape
        ch, pos = np.divmod(np.asarray(neurons), ho * wo)
        if np.any(pos[1:] < pos[:-1]):
            by = np.argsort(pos, kind="stable")
            ch, pos = ch[by], pos[by]
        first = np.flatnonzero(np.r_[True, pos[1:] != pos[:-1]])
        lo, hi = np.minimum.reduceat(ch, first), np.maximum.reduceat(ch, first)
        y, x = np.divmod(pos[first], wo)
        y0, x0 = int(y.min()), int(x.min())
        seen = self._canvas(int(y.max()) - y0 + 1, int(x.max()) - x0 + 1)
        if np.array_equal(hi - lo + 1, np.diff(np.r_[first, len(pos)])):  # each position: a channel range
            for a, b in set(zip(lo.tolist(), hi.tolist())):
                at = (lo == a) & (hi == b)
                taps = self.taps if b - a + 1 == co else self.nz[a:b + 1].any(axis=0)
                self._mark(seen, taps, y[at] - y0, x[at] - x0)
        else:  # any channel sets: one group per distinct set
            for c in np.unique(ch):
                at = np.isin(pos[first], pos[ch == c])
                self._mark(seen, self.nz[c], y[at] - y0, x[at] - x0)
        r0, r1, c0, c1 = self._clip(seen.shape[1:], y0, x0)
        return int(seen[:, r0:r1, c0:c1].sum())

    def fan_in_bound(self, neurons: np.ndarray) -> int:
        """An upper bound of ``fan_in`` from the neurons' bounding box (input channels read x rows x columns
        spanned): cheap, to skip the count where it cannot exceed a limit."""
        _, ho, wo = self.kernel.out_shape
        y, x = np.divmod(np.asarray(neurons) % (ho * wo), wo)
        k, (kh, kw) = self.kernel, self.nz.shape[2:]
        rows = _span(np.array(int(y.max() - y.min()) + 1), k.stride[0], kh, k.extent[0])
        cols = _span(np.array(int(x.max() - x.min()) + 1), k.stride[1], kw, k.extent[1])
        return int(self.reads.any(axis=0).sum() * rows * cols)

    def tile_fan_in(self, c0: int, c1: int, y0: int, y1: int, x0: int, x1: int) -> int:
        """``fan_in`` of the tile ``channels [c0, c1) x rows [y0, y1) x columns [x0, x1)``: its window pattern is
        built once per channel group and tile size, and counted inside the image from a summed-area table."""
        key = (c0, c1, y1 - y0, x1 - x0)
        if key not in self._patterns:
            taps = self.taps if (c0, c1) == (0, self.nz.shape[0]) else self.nz[c0:c1].any(axis=0)
            py, px = np.divmod(np.arange((y1 - y0) * (x1 - x0)), x1 - x0)
            seen = self._canvas(y1 - y0, x1 - x0)
            self._mark(seen, taps, py, px)
            self._patterns[key] = np.pad(seen.sum(0).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
        sat = self._patterns[key]
        r0, r1, q0, q1 = self._clip((sat.shape[0] - 1, sat.shape[1] - 1), y0, x0)
        return int(sat[r1, q1] - sat[r0, q1] - sat[r1, q0] + sat[r0, q0])

    def _canvas(self, n_rows: int, n_cols: int) -> np.ndarray:
        """``[Ci, rows, cols]`` of the source that ``n_rows x n_cols`` output positions' windows span."""
        (sh, sw), (kh, kw) = self.kernel.stride, self.nz.shape[2:]
        return np.zeros((self.nz.shape[1], (n_rows - 1) * sh + kh, (n_cols - 1) * sw + kw), dtype=bool)

    def _mark(self, seen: np.ndarray, taps: np.ndarray, py: np.ndarray, px: np.ndarray) -> None:
        """Mark on ``seen`` what the windows at output positions ``(py, px)`` (relative) read through ``taps``."""
        sh, sw = self.kernel.stride
        ci, dy, dx = np.nonzero(taps)
        _, n_rows, n_cols = seen.shape
        seen.reshape(-1)[((ci * n_rows + (py * sh)[:, None] + dy) * n_cols + (px * sw)[:, None] + dx).ravel()] = True

    def _clip(self, size: tuple[int, int], y0: int, x0: int) -> tuple[int, int, int, int]:
        """The rows and columns of a canvas starting at output position ``(y0, x0)`` that lie inside the image."""
        k = self.kernel
        oy, ox = y0 * k.stride[0] - k.pad[0], x0 * k.stride[1] - k.pad[2]
        (he, we), (n_rows, n_cols) = k.extent, size
        return (min(n_rows, max(0, -oy)), min(n_rows, max(0, he - oy)),
                min(n_cols, max(0, -ox)), min(n_cols, max(0, we - ox)))


# ----------------------------------------------------------------------------------------- placement

@dataclass
class MapLayer:
    """One group of neurons to place: its incoming connections (``[n_neurons, n_source]`` matrices or
    kernels) by source name."""

    name: str
    neurons: int
    incoming: list[tuple[str, Weights]] = field(default_factory=list)
    order: np.ndarray | None = None  # placement order of the neurons without tiling (default: flat index order)
    _geometry: dict[int, ConvGeometry] = field(default_factory=dict, repr=False)

    def placed(self) -> np.ndarray:
        return np.arange(self.neurons) if self.order is None else self.order

    def geometry(self, i: int) -> ConvGeometry:
        """The geometry of incoming connection ``i`` (a kernel), computed once."""
        if i not in self._geometry:
            self._geometry[i] = ConvGeometry(self.incoming[i][1])  # type: ignore[arg-type]
        return self._geometry[i]

    def convolutions(self) -> list[ConvGeometry] | None:
        """The geometries when every incoming connection is a kernel onto this layer (it is then tiled with
        weight sharing), else None."""
        ks = [w for _, w in self.incoming]
        if not ks or not all(isinstance(k, Kernel) and k.out_shape == ks[0].out_shape for k in ks):
            return None
        return [self.geometry(i) for i in range(len(ks))] if ks[0].shape[0] == self.neurons else None


@dataclass
class Core:
    layer: str
    rows: np.ndarray  # the layer's neurons (flat indices) placed on this core
    synapses: int  # (target, source) synapses into its neurons
    fan_in: int  # distinct source neurons, counted per connection (see ``partition``'s ``exact``)
    bound_by: str  # what ended the block: neurons, synapses (memory), fan_in or layer end
    weights: int = -1  # weights stored: its shared kernel weights when tiled, else its synapses
    tile: tuple[int, int, int, int, int, int] | None = None  # channels, rows, columns [start, stop) of a tile

    def __post_init__(self) -> None:
        if self.weights < 0:
            self.weights = self.synapses

    @property
    def neurons(self) -> int:
        return len(self.rows)


def layers_from_plan(plan: Any) -> list[MapLayer]:
    """The plan's neuron layers, and its readout when it has connections (accumulators on chip).

    Without tiling, neurons of a ``[C, H, W]`` layer are placed position by position, all channels of a
    position together (``H, W, C`` order), so that a core's block shares its receptive field (fan-in).
    """
    def order(shape: tuple[int, ...]) -> np.ndarray | None:
        if len(shape) != 3:
            return None
        return np.arange(int(np.prod(shape))).reshape(shape).transpose(1, 2, 0).ravel()

    def incoming(conns: list[Any]) -> list[tuple[str, Weights]]:
        return [(c.source, c.kernel if c.kernel is not None else c.matrix.tocsr()) for c in conns]

    out = [MapLayer(lay.name, lay.size, incoming(lay.conns), order(tuple(lay.shape))) for lay in plan.layers]
    if plan.readout.conns:
        out.append(MapLayer("(readout)", plan.readout.size, incoming(plan.readout.conns)))
    return out


def has_kernels(layers: list[MapLayer]) -> bool:
    return any(isinstance(w, Kernel) for lay in layers for _, w in lay.incoming)


def partition(layers: list[MapLayer], limits: dict[str, float], shared: bool = True,
              exact: bool = True) -> tuple[list[Core], list[str]]:
    """Blocks of each layer under the per-core limits; the reasons it cannot be placed, if any.

    ``shared``: a layer whose connections are all kernels is tiled with weight sharing (:func:`_tiles`);
    otherwise (and for every layer when not ``shared``) it is cut into contiguous blocks (:func:`_blocks`).
    ``exact=False``: a contiguous block's kernel fan-in is counted only where its bound exceeds the limit
    (the same blocks, faster; ``Core.fan_in`` is then that bound), for the expanded comparison.
    """
    cores: list[Core] = []
    problems: list[str] = []
    shared = shared and limits.get("shared_convolution_weights", 1.0) > 0
    for lay in layers:
        convs = lay.convolutions() if shared else None
        if convs:
            _tiles(lay, convs, limits, cores, problems)
        else:
            _blocks(lay, limits, cores, problems, exact)
    chip = int(limits["cores_per_chip"])
    if len(cores) > chip:
        problems.append(f"{len(cores)} cores needed, over the {chip} of one chip")
    return cores, problems


def _blocks(lay: MapLayer, limits: dict[str, float], cores: list[Core], problems: list[str],
            exact: bool = True) -> None:
    """Contiguous blocks in placement order; every synapse stored (a kernel counted as its expansion)."""
    max_n, max_s, max_f = (int(limits[k]) for k in ("neurons_per_core", "synapses_per_core", "fan_in_per_core"))
    placed = lay.placed()
    mats: list[sp.csr_matrix] = []
    geoms: list[ConvGeometry] = []
    per_row = np.zeros(lay.neurons, dtype=np.int64)
    for i, (_, w) in enumerate(lay.incoming):
        if isinstance(w, Kernel):
            geoms.append(lay.geometry(i))
            per_row += geoms[-1].synapses[placed]
        else:
            mats.append((w != 0).astype(np.int64).tocsr()[placed])
            per_row += np.diff(mats[-1].indptr)

    def fan_in(a: int, b: int, count: bool = True) -> int:
        n = sum(len(np.unique(m[a:b].indices)) for m in mats)
        if not count and geoms:
            bound = n + sum(g.fan_in_bound(placed[a:b]) for g in geoms)
            if bound <= max_f:
                return bound
        return n + sum(g.fan_in(placed[a:b]) for g in geoms)

    cum = np.concatenate([[0], np.cumsum(per_row)])
    start = 0
    while start < lay.neurons:
        by_n = min(lay.neurons, start + max_n)
        by_s = int(np.searchsorted(cum, cum[start] + max_s, side="right")) - 1
        stop = min(by_n, by_s)
        bound = "synapses" if by_s < by_n else "neurons" if by_n < lay.neurons else "layer end"
        if stop <= start:
            problems.append(f"{lay.name}: neuron {start} alone has {int(per_row[start])} synapses, over the "
                            f"{max_s} a core holds")
            return
        f = fan_in(start, stop, exact) if lay.incoming else 0
        if f > max_f:
            lo, hi = start + 1, stop  # largest stop with fan-in within the limit (fan-in grows with stop)
            if fan_in(start, lo) > max_f:
                problems.append(f"{lay.name}: neuron {start} alone has fan-in {fan_in(start, lo)}, over the "
                                f"{max_f} a core takes")
                return
            while lo < hi:
                mid = (lo + hi + 1) // 2
                lo, hi = (mid, hi) if fan_in(start, mid) <= max_f else (lo, mid - 1)
            stop, bound, f = lo, "fan_in", fan_in(start, lo)
        cores.append(Core(lay.name, placed[start:stop], int(cum[stop] - cum[start]), f, bound))
        start = stop


def _sizes(n: int) -> np.ndarray:
    """Block sizes that give distinct block counts: ``ceil(n / k)`` for ``k = 1..n``, ascending."""
    return np.unique(-(-n // np.arange(1, n + 1)))


def _span(n: np.ndarray, stride: int, k: int, size: int) -> np.ndarray:
    """Source rows (or columns) that ``n`` consecutive outputs' windows span at most, clipped to the image."""
    return np.minimum(size, (n - 1) * min(stride, k) + k)


def _tiles(lay: MapLayer, convs: list[ConvGeometry], limits: dict[str, float], cores: list[Core],
           problems: list[str]) -> None:
    """A convolutional layer as equal tiles of ``g`` channels x ``th`` rows x ``tw`` columns, the fewest that fit
    (then the fewest spatial tiles, i.e. the fewest stored weight copies; then the smallest fan-in).

    A tile stores the non-zero kernel weights of its channels once (shared by all its positions); its fan-in
    is bounded, to choose the size, by ``sum over kernels of (input channels its channels read) x (rows) x
    (columns) its windows span`` (exact for a dense kernel's interior tile, an upper bound elsewhere); the
    tiles' own fan-in is then counted exactly.
    """
    max_n, max_f = int(limits["neurons_per_core"]), int(limits["fan_in_per_core"])
    max_w = int(limits.get("shared_weights_per_core", limits["synapses_per_core"]))
    co, ho, wo = convs[0].kernel.out_shape
    gs, ths, tws = _sizes(co), _sizes(ho), _sizes(wo)
    per_channel = sum((c.weights for c in convs), np.zeros(co, dtype=np.int64))
    stored = np.array([np.add.reduceat(per_channel, np.arange(0, co, g)).max() for g in gs])
    fan = np.zeros((len(gs), len(ths), len(tws)))
    for c in convs:
        k, (kh, kw) = c.kernel, c.nz.shape[2:]
        cin = np.array([np.logical_or.reduceat(c.reads, np.arange(0, co, g), axis=0).sum(1).max() for g in gs])
        rows, cols = _span(ths, k.stride[0], kh, k.extent[0]), _span(tws, k.stride[1], kw, k.extent[1])
        fan += cin[:, None, None] * rows[None, :, None] * cols[None, None, :]
    neurons = gs[:, None, None] * ths[None, :, None] * tws[None, None, :]
    ok = (neurons <= max_n) & (fan <= max_f) & (stored[:, None, None] <= max_w)
    if not ok.any():
        if per_channel.max() > max_w:
            problems.append(f"{lay.name}: output channel {int(per_channel.argmax())} alone has "
                            f"{int(per_channel.max())} kernel weights, over the {max_w} a core holds")
        else:
            problems.append(f"{lay.name}: one neuron reads up to {int(fan[0, 0, 0])} sources, over the {max_f} "
                            "a core takes")
        return
    spatial = (-(-ho // ths))[:, None] * (-(-wo // tws))[None, :]
    tiles = (-(-co // gs))[:, None, None] * spatial[None]
    pick = np.lexsort((fan[ok], np.broadcast_to(spatial, fan.shape)[ok], tiles[ok]))[0]
    i, j, m = (int(a[pick]) for a in np.nonzero(ok))
    g, th, tw = int(gs[i]), int(ths[j]), int(tws[m])
    use = {"neurons": neurons[i, j, m] / max_n, "synapses": stored[i] / max_w, "fan_in": fan[i, j, m] / max_f}
    bound = "layer end" if tiles[i, j, m] == 1 else max(use, key=use.get)  # type: ignore[arg-type]
    synapses = sum(c.synapses for c in convs)
    for c0 in range(0, co, g):
        for y0 in range(0, ho, th):
            for x0 in range(0, wo, tw):
                c1, y1, x1 = min(co, c0 + g), min(ho, y0 + th), min(wo, x0 + tw)
                rows = ((np.arange(c0, c1)[:, None, None] * ho + np.arange(y0, y1)[None, :, None]) * wo
                        + np.arange(x0, x1)[None, None, :]).ravel()
                cores.append(Core(lay.name, rows, int(synapses[rows].sum()), sum(c.tile_fan_in(c0, c1, y0, y1, x0, x1) for c in convs),
                                  bound, int(per_channel[c0:c1].sum()), (c0, c1, y0, y1, x0, x1)))


# ----------------------------------------------------------------------------------------------- load

class _Tally:
    """Per-core synaptic operations of one partition, accumulated over batches."""

    def __init__(self, cores: list[Core]) -> None:
        self.cores = cores
        self.total = np.zeros(len(cores))
        self.peak = np.zeros(len(cores))
        self.bottleneck = np.zeros(len(cores), dtype=np.int64)  # steps in which each core was the slowest
        self.step_time_sum = 0.0
        self.step_time_max = 0.0
        self.neurons = np.array([c.neurons for c in cores], dtype=np.float64)

    def membership(self, layer: str, n: int) -> sp.csr_matrix:
        """``[n_cores, n]``: 1 where a neuron of ``layer`` sits on a core."""
        mine = [(i, c.rows) for i, c in enumerate(self.cores) if c.layer == layer]
        r = np.concatenate([np.full(len(rows), i) for i, rows in mine]) if mine else np.zeros(0, dtype=np.int64)
        c = np.concatenate([rows for _, rows in mine]) if mine else np.zeros(0, dtype=np.int64)
        return sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(len(self.cores), n))

    def add(self, load: np.ndarray, limits: dict[str, float]) -> None:
        self.total += load.sum(axis=0)
        self.peak = np.maximum(self.peak, load.max(axis=0, initial=0))
        t = load * limits["synop_s"] + self.neurons * limits["neuron_update_s"]
        slowest = t.max(axis=1, initial=0)
        if len(self.cores):
            np.add.at(self.bottleneck, t.argmax(axis=1), 1)
        self.step_time_sum += float(slowest.sum())
        self.step_time_max = max(self.step_time_max, float(slowest.max(initial=0)))


class CoreLoad:
    """Per-core synaptic operations per time step from a run's spikes, accumulated over batches, for the
    partition ``cores`` and, when given, the ``expanded`` one (no weight sharing) on the same spikes.

    A matrix connection's load per core is ``(cores x synapses from each source neuron) @ spikes``; a kernel's
    is the binary kernel applied to the spikes (synaptic events per target neuron: a convolution, never an
    expanded matrix) summed over each core's neurons.
    """

    def __init__(self, layers: list[MapLayer], cores: list[Core], input_name: str, limits: dict[str, float],
                 expanded: list[Core] | None = None) -> None:
        self.limits, self.input_name = limits, input_name
        self.tallies = [_Tally(cores)] + ([_Tally(expanded)] if expanded is not None else [])
        self.samples = self.steps = 0
        self.missing: set[str] = set()
        # per connection: its source, the binary kernel (or None) and per tally the matrix it is multiplied by
        self.terms: list[tuple[str, Kernel | None, list[sp.csr_matrix]]] = []
        for lay in layers:
            for src, w in lay.incoming:
                member = [t.membership(lay.name, lay.neurons) for t in self.tallies]
                if isinstance(w, Kernel):
                    self.terms.append((src, w.with_weight(w.weight != 0), member))
                else:
                    b = (w != 0).astype(np.float64).tocsr()
                    self.terms.append((src, None, [(p @ b).tocsr() for p in member]))

    def _spikes(self, src: str, result: RunResult, frames: np.ndarray, n: int) -> np.ndarray | None:
        if src == self.input_name:
            return (frames.reshape(n, -1) != 0).astype(np.float32)
        if src in result.spikes:
            return np.asarray(result.spikes[src], dtype=np.float32).reshape(n, -1)
        self.missing.add(src)
        return None

    def update(self, result: RunResult, frames: np.ndarray) -> None:
        frames = np.asarray(frames)
        T, B = frames.shape[:2]
        self.samples += B
        self.steps = T
        loads = [np.zeros((T * B, len(t.cores))) for t in self.tallies]
        for src, kernel, mats in self.terms:
            s = self._spikes(src, result, frames, T * B)
            if s is None:
                continue
            if kernel is None:
                for load, m in zip(loads, mats):
                    load += np.asarray((m @ s.T.astype(np.float64)).T)
                continue
            chunk = max(1, (1 << 22) // kernel.shape[0])  # bounded memory for the per-neuron events
            for a in range(0, T * B, chunk):
                with torch.no_grad():
                    events = kernel.apply(torch.from_numpy(s[a:a + chunk])).numpy().astype(np.float64)
                for load, m in zip(loads, mats):
                    load[a:a + chunk] += np.asarray((m @ events.T).T)
        for t, load in zip(self.tallies, loads):
            t.add(load, self.limits)


# --------------------------------------------------------------------------------------------- report

def _memory(c: Core, lim: dict[str, float]) -> float:
    bits = lim.get("bits_per_shared_weight", lim["bits_per_synapse"]) if c.tile else lim["bits_per_synapse"]
    return c.weights * bits / 8


def _timing(tally: _Tally | None, load: CoreLoad | None, lim: dict[str, float]) -> dict[str, Any] | None:
    """Time per step and energy per inference of one partition's tally, or None without a run."""
    if tally is None or load is None or not load.samples:
        return None
    n, T, k = load.samples, load.steps, len(tally.cores)
    synops = float(tally.total.sum()) / n
    updates = float(tally.neurons.sum()) * T
    t_mean = tally.step_time_sum / (n * T) + lim["barrier_sync_s"]
    balanced = (synops / T * lim["synop_s"] + updates / T * lim["neuron_update_s"]) / max(k, 1)
    e = {"synops": synops * lim["synop_pj"], "neuron_updates": updates * lim["neuron_update_pj"],
         "barrier_sync": T * k * lim["barrier_sync_pj_per_core"]}
    e["total"] = e["synops"] + e["neuron_updates"] + e["barrier_sync"]
    return {"samples": n, "time_steps": T, "synops_per_inference": synops, "neuron_updates_per_inference": updates,
            "time_per_step_s": {"mean": t_mean, "max": tally.step_time_max + lim["barrier_sync_s"],
                                "if_perfectly_balanced": balanced + lim["barrier_sync_s"]},
            "time_per_inference_s": t_mean * T, "energy_per_inference_pj": e}


def core_map(layers: list[MapLayer], input_name: str, load: CoreLoad | None, model: dict[str, Any],
             cores: list[Core], problems: list[str],
             expanded: tuple[list[Core], list[str]] | None = None) -> dict[str, Any]:
    """The JSON-ready estimate: partition, fit, per-core load, time per step and energy per inference, with
    weight sharing; ``expanded``: the same without it (every synapse stored; None: the partition is the same)."""
    lim = limit_values(model)
    exp_cores, exp_problems = expanded if expanded is not None else (cores, problems)
    tally = load.tallies[0] if load else None
    exp_tally = tally if expanded is None else load.tallies[1] if load and len(load.tallies) > 1 else None
    steps_run = max(load.samples * load.steps, 1) if load else 1
    per_core = []
    for i, c in enumerate(cores):
        row: dict[str, Any] = {"core": i, "layer": c.layer, "neurons": c.neurons, "synapses": c.synapses,
                               "weights": c.weights, "fan_in": c.fan_in, "bound_by": c.bound_by,
                               "synaptic_memory_bytes": _memory(c, lim)}
        if c.tile:
            row["tile"] = {"channels": list(c.tile[:2]), "rows": list(c.tile[2:4]), "columns": list(c.tile[4:])}
        if tally is not None:
            row.update(synops_per_step_mean=float(tally.total[i] / steps_run),
                       synops_per_step_max=float(tally.peak[i]), bottleneck_steps=int(tally.bottleneck[i]))
        per_core.append(row)
    per_layer = []
    for lay in layers:
        mine = [c for c in cores if c.layer == lay.name]
        theirs = [c for c in exp_cores if c.layer == lay.name]
        per_layer.append({
            "layer": lay.name, "neurons": lay.neurons,
            "synapses": int(sum(w.synapses if isinstance(w, Kernel) else (w != 0).sum() for _, w in lay.incoming)),
            "parameters": int(sum(w.parameters if isinstance(w, Kernel) else (w != 0).sum()
                                  for _, w in lay.incoming)),
            "weight_sharing": any(c.tile for c in mine), "cores": len(mine), "cores_expanded": len(theirs),
            "synaptic_memory_bytes": sum(_memory(c, lim) for c in mine),
            "synaptic_memory_bytes_expanded": sum(_memory(c, lim) for c in theirs),
            "sources": [s for s, _ in lay.incoming]})
    chip = int(lim["cores_per_chip"])
    out: dict[str, Any] = {
        "chip": model["chip"], "is_a_model": True, "input": input_name,
        "limits": {k: {"value": e["value"], "status": e["status"], "source": e["source"]}
                   for k, e in model["limits"].items()},
        "derived": {"synapses_per_core": int(lim["synapses_per_core"]),
                    "shared_weights_per_core": int(lim["shared_weights_per_core"])},
        "costs": {k: {"value": e["value"], "status": e["status"], "source": e["source"]} for k, e in model["costs"].items()},
        "model": model["model"],
        "layers": per_layer, "cores": per_core, "cores_needed": len(cores),
        "chips_needed": -(-len(cores) // chip) if cores else 0,
        "fits": not problems, "problems": problems,
        "synaptic_memory_bytes": sum(_memory(c, lim) for c in cores),
        "expanded": {"cores_needed": len(exp_cores), "chips_needed": -(-len(exp_cores) // chip) if exp_cores else 0,
                     "fits": not exp_problems, "problems": exp_problems,
                     "synaptic_memory_bytes": sum(_memory(c, lim) for c in exp_cores)},
    }
    timing = _timing(tally, load, lim)
    if timing is not None and tally is not None:
        busiest = int(np.argmax(tally.total)) if len(cores) else None
        out["load"] = {**timing, "most_loaded_core": None if busiest is None else {**per_core[busiest]},
                       "most_often_bottleneck": None if busiest is None else int(np.argmax(tally.bottleneck)),
                       "missing_sources": sorted(load.missing)}  # type: ignore[union-attr]
    exp_timing = _timing(exp_tally, load, lim)
    if exp_timing is not None:
        out["expanded"]["load"] = {k: exp_timing[k] for k in
                                   ("time_per_step_s", "time_per_inference_s", "energy_per_inference_pj")}
    return out


def _placements(layers: list[MapLayer], lim: dict[str, float]) -> tuple[tuple[list[Core], list[str]],
                                                                        tuple[list[Core], list[str]] | None]:
    """The partition with weight sharing and, when the plan has kernels, the one without (else None)."""
    shared = partition(layers, lim)
    return shared, partition(layers, lim, shared=False, exact=False) if has_kernels(layers) else None


def _load(layers: list[MapLayer], input_name: str, lim: dict[str, float], shared: tuple[list[Core], list[str]],
          expanded: tuple[list[Core], list[str]] | None) -> CoreLoad | None:
    """A load counter when the shared partition placed every neuron (the expanded one too, if it did)."""
    n = sum(lay.neurons for lay in layers)
    if sum(c.neurons for c in shared[0]) != n:
        return None
    full = expanded is not None and sum(c.neurons for c in expanded[0]) == n
    return CoreLoad(layers, shared[0], input_name, lim, expanded[0] if full else None)  # type: ignore[index]


def estimate(plan: Any, runs: list[tuple[RunResult, np.ndarray]] | None = None) -> dict[str, Any]:
    """Partition ``plan`` onto Loihi 2 cores and price the runs' activity (a convenience for tests and scripts)."""
    model = load_core_model()
    lim = limit_values(model)
    layers = layers_from_plan(plan)
    shared, expanded = _placements(layers, lim)
    load = _load(layers, plan.input_name, lim, shared, expanded) if runs is not None else None
    for res, fr in runs or []:
        if load is not None:
            load.update(res, fr)
    return core_map(layers, plan.input_name, load, model, *shared, expanded=expanded)


class CoreMapping:
    """The estimate as ``deploy profile`` runs it: the graph's Lava plan, partitioned (with and without weight
    sharing), then fed batch by batch."""

    def __init__(self, layers: list[MapLayer], input_name: str, reason: str | None = None) -> None:
        self.model = load_core_model()
        self.layers, self.input_name, self.reason = layers, input_name, reason
        lim = limit_values(self.model)
        self.shared, self.expanded = _placements(layers, lim) if reason is None else (([], []), None)
        self.load = _load(layers, input_name, lim, self.shared, self.expanded) if reason is None else None

    @classmethod
    def build(cls, graph: Any, card: Any) -> CoreMapping:
        """From a NIR graph and its card; a graph Lava cannot run gives an estimate that says why it is absent."""
        from neuromoco.deploy.loihi.compile import compile_graph
        from neuromoco.errors import UserError

        try:
            plan = compile_graph(graph, card.dt, precision="float", input_shape=list(card.input_shape))
        except UserError as err:
            return cls([], "", reason=str(err))
        return cls(layers_from_plan(plan), plan.input_name)

    def update(self, result: RunResult, frames: np.ndarray) -> None:
        if self.load is not None:
            self.load.update(result, frames)

    def result(self) -> dict[str, Any]:
        if self.reason is not None:
            return {"available": False, "reason": f"the graph has no Lava plan: {self.reason}", "is_a_model": True}
        out = core_map(self.layers, self.input_name, self.load, self.model, *self.shared, expanded=self.expanded)
        return {"available": True, **out}
