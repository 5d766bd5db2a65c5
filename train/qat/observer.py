"""The observer: the grid of every weight layer, read off the Lava fixed-point plan of the exported network.

Unlike ``torch.ao.quantization``'s observers, which derive a scale from statistics, this one compiles the
network the way ``model.nir`` is written (BatchNorm folded, weights core-clipped) with the Lava target's own
:func:`~neuromoco.deploy.loihi.compile.compile_graph` and reads every neuron's scale ``sigma`` and every
connection's exponents and sign modes: the plan's quantization rule, not a copy of it.
"""

from __future__ import annotations

import copy
from typing import Any

import nir
import numpy as np
import torch

from neuromoco.errors import UserError
from neuromoco.train.export.bn_fold import unfold_weight
from neuromoco.train.export.to_nir import to_nir
from neuromoco.train.models.base import SpikingClassifier
from neuromoco.train.qat.config import QATConfig
from neuromoco.train.qat.grid import Grid, clip_to_core, set_bias_grid
from neuromoco.train.qat.weighted import Weighted, weighted_layers


@torch.no_grad()
def observe(model: SpikingClassifier, weighted: list[Weighted], feeds: dict[str, str], config: QATConfig,
            input_shape: list[int], dt: float) -> tuple[list[Grid], dict[str, Any]]:
    """Compile ``model``'s exported network (core-clipped) to the fixed-point plan; return every weight layer's
    grid (in ``weighted``'s order) and a report (per layer: exponents, scale range; ``limited_rows``: rows
    whose scale differs within a channel).

    ``feeds``: per neuron layer (and ``"output"``), the weight layer whose connections feed it.
    """
    graph, plan = _compile(model, weighted, config, input_shape, dt)
    index = {w.name: i for i, w in enumerate(weighted)}
    grids: list[Grid | None] = [None] * len(weighted)
    limited = 0
    rep: dict[str, Any] = {"layers": {}}
    for tgt, gain, node, vth, lf in _targets(graph, plan, feeds, dt):
        where = getattr(tgt, "name", "readout")
        fixed, in_scale = _connection_grid(plan, tgt, node, where)
        out = weighted[index[node]].layer.weight.shape[0]
        grid, rows_off = _neuron_grid(tgt, gain, vth, lf, fixed, in_scale, out)
        limited += rows_off
        grids[index[node]] = grid
        rep["layers"][where] = {"weights": node, "exponents": [e for e, _ in fixed],
                                "scale_min": float(grid.m.min()), "scale_max": float(grid.m.max())}
    done = [g for g in grids if g is not None]
    if len(done) != len(grids):
        missing = [w.name for w, g in zip(weighted, grids, strict=True) if g is None]
        raise UserError(f"--qat loihi: {', '.join(missing)} feeds no neuron layer or readout")
    rep["limited_rows"] = limited
    return done, rep


def _compile(model: SpikingClassifier, weighted: list[Weighted], config: QATConfig, input_shape: list[int],
             dt: float) -> tuple[nir.NIRGraph, Any]:
    """The exported graph of ``model`` with its weights core-clipped (on a copy) and its fixed-point plan."""
    from neuromoco.deploy.loihi.compile import compile_graph

    clipped = [clip_to_core(w.folded()[0].detach(), w.core_taps(), config.scale) for w in weighted]
    probe = copy.deepcopy(model).eval()
    for w, wf in zip(weighted_layers(probe, input_shape, dt), clipped, strict=True):
        unfold_weight(w.layer, w.bn, wf)
    graph = to_nir(probe.deploy_modules(), input_shape, dt)
    plan = compile_graph(graph, dt, precision="fixed", input_shape=input_shape, **config.plan_options())
    return graph, plan


def _targets(graph: nir.NIRGraph, plan: Any, feeds: dict[str, str], dt: float
             ) -> list[tuple[Any, np.ndarray, str, np.ndarray | None, Any]]:
    """Per plan layer (and the readout): (the layer, its input gain per neuron, the weight layer feeding it, its
    threshold per neuron (None: not spiking), its Loihi neuron form (None: the readout))."""
    from neuromoco.deploy.semantics import discretize, loihi_form

    out: list[tuple[Any, np.ndarray, str, np.ndarray | None, Any]] = []
    for lay in plan.layers:
        lf = loihi_form(discretize(graph.nodes[lay.name], dt), v_init=0.0)
        gain = np.broadcast_to(np.asarray(lf.input_gain, dtype=np.float64), lay.shape).reshape(-1)
        vth = None if not lay.spiking or lf.vth is None else (
            np.broadcast_to(np.asarray(lf.vth, dtype=np.float64), lay.shape).reshape(-1))
        out.append((lay, gain, feeds[lay.name], vth, lf))
    if plan.readout.conns:
        out.append((plan.readout, np.ones(plan.readout.size), feeds["output"], None, None))
    return out


def _connection_grid(plan: Any, tgt: Any, node: str, where: str) -> tuple[list[tuple[int, bool]], float]:
    """The (exponent, mixed sign) pieces and the input scale shared by every connection of weight layer ``node``
    into ``tgt``; refuses connections that disagree (one weight grid cannot hold them)."""
    primary = [c for c in tgt.conns if "residual_of" not in c.report]
    pieces = {_pieces(tgt, c) for c in primary}
    if len(pieces) != 1:  # one weight layer read from several sources: each source's own connection
        raise UserError(f"--qat loihi: the connections of {node} into {where} got different Loihi "
                        f"exponents or sign modes ({sorted(pieces)}): one weight grid cannot hold them")
    in_scales = {plan.input_scale if c.source == plan.input_name else 1.0 for c in primary}
    if len(in_scales) != 1:
        raise UserError(f"--qat loihi: {where} reads the input and neuron layers through {node} with "
                        f"different scales (input_scale {plan.input_scale})")
    return list(pieces.pop()), in_scales.pop()


def _neuron_grid(tgt: Any, gain: np.ndarray, vth: np.ndarray | None, lf: Any, fixed: list[tuple[int, bool]],
                 in_scale: float, out: int) -> tuple[Grid, int]:
    """The grid of the weight layer feeding ``tgt`` (``out`` output channels), and how many of its rows have a
    scale other than their channel's median.

    Every spiking neuron's ``sigma * v_threshold`` is made an integer (``sigma`` rounded up, so the row's
    largest weight clips onto the top mantissa and the plan computes that very ``sigma``): the threshold
    mantissa ``round(sigma * vth)`` is then exact.
    """
    from neuromoco.deploy.loihi.fixed_point import MANT_MIXED, MANT_SINGLE

    sigma = np.broadcast_to(np.asarray(tgt.scale, dtype=np.float64), (len(gain),))
    if vth is not None:  # the threshold mantissa round(sigma * vth) is exact when sigma * vth is an integer
        sigma = np.maximum(np.ceil(sigma * vth - 1e-9), 1.0) / vth  # up: the row max clips onto the top
    rows = (sigma * gain / in_scale).reshape(out, -1)
    m = np.median(rows, axis=1)
    limited = int((np.abs(rows - m[:, None]) > 1e-9 * m[:, None]).sum())
    top = (MANT_MIXED if fixed[0][1] else MANT_SINGLE) * 2.0 ** fixed[0][0]
    grid = Grid(torch.from_numpy(m.copy()), fixed, top)
    if lf is not None:
        own = np.broadcast_to(np.asarray(lf.bias, dtype=np.float64), tgt.shape).reshape(out, -1)[:, 0]
        membrane = bool(np.all(np.asarray(lf.du, dtype=np.float64) == 1.0))
        set_bias_grid(grid, membrane, own, gain.reshape(out, -1)[:, 0], in_scale)
    return grid, limited


def _pieces(tgt: Any, conn: Any) -> tuple[tuple[int, bool], ...]:
    """The (exponent, mixed sign) of each 8-bit piece of ``conn`` as the plan chose them (a residual piece of
    ``weight_bits=16``: from its mantissas)."""
    fixed = [(int(conn.report.get("weight_exp", 0)), conn.report.get("sign_mode", "mixed") == "mixed")]
    for c in tgt.conns:
        if c.report.get("residual_of") == conn.source:
            d = c.kernel.weight[c.kernel.weight != 0] if c.kernel is not None else c.matrix.data
            fixed.append((int(c.weight_exp), bool(d.size and d.min() < 0 < d.max())))
    return tuple(fixed)
