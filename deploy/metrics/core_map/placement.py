"""The partition of a Lava plan's layers onto Loihi 2 cores under the per-core limits: contiguous blocks (every
synapse stored) or, for a layer whose connections are all convolution kernels, tiles of channels x rows x columns
that store their channels' kernel weights once (weight sharing)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeAlias

import numpy as np
import scipy.sparse as sp

from neuromoco.deploy.loihi.kernel import Kernel
from neuromoco.deploy.metrics.core_map.geometry import ConvGeometry, _span

Weights: TypeAlias = sp.csr_matrix | Kernel  # a connection: a matrix, or a kernel never expanded


def nonzero(w: sp.csr_matrix) -> Any:
    """The synapses of a matrix connection: its non-zero entries, as a boolean sparse matrix."""
    return w != 0


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
            self._geometry[i] = ConvGeometry(self.incoming[i][1])
        return self._geometry[i]

    def convolutions(self) -> list[ConvGeometry] | None:
        """The geometries when every incoming connection is a kernel onto this layer (it is then tiled with
        weight sharing), else None."""
        ks = [w for _, w in self.incoming if isinstance(w, Kernel)]
        if not ks or len(ks) < len(self.incoming) or not all(k.out_shape == ks[0].out_shape for k in ks):
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
            mats.append(nonzero(w).astype(np.int64).tocsr()[placed])
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
                fan_in = sum(c.tile_fan_in(c0, c1, y0, y1, x0, x1) for c in convs)
                cores.append(Core(lay.name, rows, int(synapses[rows].sum()), fan_in, bound,
                                  int(per_channel[c0:c1].sum()), (c0, c1, y0, y1, x0, x1)))
