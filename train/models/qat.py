"""Quantization-aware training onto the Loihi 2 weight grid of the Lava fixed-point plan (``--qat loihi``).

Like ``torch.ao.quantization`` (an observer picks the grid, fake-quantization rounds onto it in the forward
pass, straight-through gradients), with one difference: the grid is not re-derived here. An observer update
(:meth:`LoihiQAT.update_grid`, at the start of every epoch and before export) exports the current model the
way ``model.nir`` is written (BatchNorm folded with its running statistics), compiles it with the Lava
target's own :func:`~neuromoco.deploy.loihi.compile.compile_graph` in fixed point and reads the scale
``sigma`` of every neuron; the forward pass then rounds ``w * sigma`` with
:func:`~neuromoco.deploy.loihi.fixed_point.split_weights`, the function the plan quantizes with. So
training and export share one definition of the grid: 8-bit mantissas (even for mixed-sign connections),
one exponent per connection, or two 8-bit pieces with ``weight_bits=16``; per-neuron or per-layer scales.

The forward pass is the exported network: every conv / linear layer uses its BatchNorm-folded weight (the
BatchNorm statistics are re-estimated on the training set once, then frozen; its gamma and beta still
train), fake-quantized per output channel. Three details make the exported weights lie on the plan's grid
exactly (plan ``rel_weight_error`` ~1e-8, float32 rounding):

* the grid's largest mantissa is 254 on both sides (Lava allows -256 for mixed signs, but a weight there
  would become the row's largest and move its scale);
* per-neuron scales: a conv's output neurons at the border miss some kernel taps, and their scale follows
  the largest weight they do see. The weights of an output channel are therefore clipped to the largest
  magnitude among the taps that every output position sees (the kernel centre with 'same' padding), so all
  neurons of a channel get one scale and one grid;
* every spiking neuron's ``sigma * v_threshold`` is made an integer (``sigma`` rounded up, so the row's
  largest weight clips onto the top mantissa and the plan computes that very ``sigma``): the threshold
  mantissa ``round(sigma * vth)`` is then exact instead of off by up to ``0.5 / sigma``.

Decays are 12-bit in the plan and dt/tau = 0.5 is exact there. Where the 24-bit state bound
(:func:`~neuromoco.deploy.loihi.fixed_point.state_bound`) lowers a scale, the plan lowers it alike for
a whole conv channel and onto a coarse grid, but the bound sums the row's own weight magnitudes, so the
scale can still move when the weights are projected onto it. :func:`project_state_dict` therefore iterates:
it projects the trained weights onto the grid, compiles them, and where the plan's scale came out lower it
rounds the channel's most rounded-up weights down one step more (where higher, takes the higher scale),
until the plan's grid of the projected weights is the grid they lie on. ``LoihiQAT.report["limited_rows"]``
counts rows whose scale differs within a channel (0 once the plan shares it).
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Any

import nir
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from neuromoco.errors import UserError
from neuromoco.train.export.bn_fold import ExportError, flatten_graph
from neuromoco.train.export.to_nir import plan_graph, to_nir
from neuromoco.train.models.neurons import LIF

QAT_CHOICES = ("none", "loihi")
_WEIGHTED = (nn.Conv2d, nn.Conv1d, nn.Linear)
_BN = (nn.BatchNorm1d, nn.BatchNorm2d)


@dataclass(frozen=True)
class QATConfig:
    """What ``--qat loihi`` trains for: the Lava target's ``-o weight_bits`` and ``-o scale`` (and its input
    scaling, at the target's defaults)."""

    scheme: str = "loihi"
    weight_bits: int = 8
    scale: str = "neuron"
    input_scale: float = 1.0
    input_max: float = 15.0

    def record(self) -> dict[str, Any]:
        return asdict(self)

    def deploy_options(self) -> list[str]:
        """The ``deploy`` options that compile the plan this model was trained for: its scale mode and weight
        width, and mixed-sign connections kept in one synapse process (the grid trained onto; the Lava
        target's default ``sign_split`` holds 8-bit weights of that grid exactly too, 16-bit ones not always)."""
        return [f"scale={self.scale}", f"weight_bits={self.weight_bits}", "sign_split=false"]


def config_from_args(args: Any) -> QATConfig | None:
    scheme = getattr(args, "qat", "none") or "none"
    if scheme == "none":
        return None
    if scheme != "loihi":
        raise UserError(f"--qat must be one of {', '.join(QAT_CHOICES)}, not {scheme!r}")
    return QATConfig(weight_bits=int(args.qat_weight_bits), scale=str(args.qat_scale))


@dataclass
class _Grid:
    """One weight layer's grid: ``w_q = split_weights(w * m, fixed=pieces) / m`` per output channel."""

    m: torch.Tensor  # [out] float64: integer units per unit of the (folded) weight
    pieces: list[tuple[int, bool]]  # (exponent, mixed sign) of each 8-bit piece
    top: float  # largest |w * m| on the grid (mantissa 254 or 255 at the first exponent)
    #: the plan's integer bias units per unit of the folded bias, over ``m`` (None: a host-side readout bias)
    bias_factor: float | None = None
    bias_own: torch.Tensor | None = None  # [out] the neuron's own bias (v_leak), in bias units over ``m``
    bias_split: bool = True  # a membrane bias (13-bit mantissa, 3-bit exponent) or a synaptic one (rounded)


@dataclass
class _Weighted:
    """One conv / linear layer of the classifier as the exported graph sees it."""

    layer: nn.Module  # the trained module (its weight is a parameter of the classifier)
    bn: nn.Module | None  # the BatchNorm folded into it at export
    name: str  # its NIR node name (conv3, fc1, ...)
    param: str  # the classifier's parameter name of ``layer.weight`` (for :func:`torch.func.functional_call`)
    bias_param: str | None  # the parameter holding its folded bias's offset: the BatchNorm's beta, or its bias
    in_shape: tuple[int, ...]  # its input's shape (one step, no batch)


class LoihiQAT(nn.Module):
    """A deployable classifier whose conv / linear weights are fake-quantized onto the plan's grid (see the
    module docstring); chains and branching (residual) models alike.

    Holds the classifier (its parameters are the ones trained and checkpointed); ``forward`` runs the
    classifier's own forward with every weight replaced by its BatchNorm-folded, quantized value divided back
    by the BatchNorm's scale, every BatchNorm on its frozen running statistics, so it computes the exported
    network on the grid. Call :meth:`update_grid` before the first forward and whenever the grid should follow
    the weights.
    """

    def __init__(self, model: nn.Module, config: QATConfig, input_shape: list[int]) -> None:
        super().__init__()
        if not getattr(model, "deployable", False):
            raise UserError("--qat loihi needs a deployable model (see `train models`)")
        self.model = model
        self.config = config
        self.input_shape = [int(v) for v in input_shape]
        self.dt = next((float(m.config.dt) for m in model.modules() if isinstance(m, LIF)), 1e-3)
        self.weighted = _weighted_layers(model, self.input_shape, self.dt)
        #: per neuron layer (and "output" for the readout): the weight layer whose connections feed it
        self.feeds = _feeding_weights(to_nir(model.deploy_modules(), self.input_shape, self.dt),
                                      {w.name for w in self.weighted})
        self._bns = [m for m in model.modules() if isinstance(m, _BN)]
        self.grids: list[_Grid] = []
        #: per weight layer, how many weights per output channel the export projection rounds down one step more
        self.shrink: list[np.ndarray | None] = []
        self.report: dict[str, Any] = {}

    # ------------------------------------------------------------------------------------------ folding
    def _weighted(self) -> list[tuple[nn.Module, nn.Module | None]]:
        return [(w.layer, w.bn) for w in self.weighted]

    @staticmethod
    def _folded(layer: nn.Module, bn: nn.Module | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The layer's BatchNorm-folded weight and bias (live: gradients reach weight, gamma and beta)."""
        w, b = layer.weight, layer.bias
        if bn is None:
            return w, b
        s = _bn_scale(bn)
        w = w * s.reshape(-1, *([1] * (w.dim() - 1)))
        b0 = b if b is not None else torch.zeros_like(bn.running_mean)
        return w, (b0 - bn.running_mean) * s + bn.bias

    def _core_taps(self) -> list[torch.Tensor | None]:
        """Per weight layer, the kernel taps every output position sees (None: all, a linear layer)."""
        out: list[torch.Tensor | None] = []
        for w in self.weighted:
            m = w.layer
            if isinstance(m, nn.Conv2d):
                ones = torch.ones(1, *w.in_shape, dtype=torch.float64)
                cols = F.unfold(ones, m.kernel_size, m.dilation, m.padding, m.stride)  # [1, C*k*k, P]
                out.append((cols[0] > 0).all(-1).reshape(m.weight.shape[1:]))
            else:
                out.append(None if isinstance(m, nn.Linear) else _core_taps_1d(m, list(w.in_shape)))
        return out

    def _clip_to_core(self, w: torch.Tensor, core: torch.Tensor | None) -> torch.Tensor:
        """Per-neuron scales: every output channel clipped to its largest core-tap magnitude."""
        if self.config.scale != "neuron" or core is None or bool(core.all()):
            return w
        lim = (w.detach().abs() * core.to(w.device)).flatten(1).amax(1)
        lim = lim.reshape(-1, *([1] * (w.dim() - 1)))
        return torch.maximum(torch.minimum(w, lim), -lim)

    # ------------------------------------------------------------------------------------- the grid
    @torch.no_grad()
    def update_grid(self) -> None:
        """Observer step: compile the current exported network (core-clipped) to the fixed-point plan and
        take every neuron's scale and every connection's exponents and sign modes from it."""
        from neuromoco.deploy.loihi.compile import compile_graph
        from neuromoco.deploy.loihi.fixed_point import MANT_MIXED, MANT_SINGLE
        from neuromoco.deploy.semantics import discretize, loihi_form

        cfg = self.config
        cores = self._core_taps()
        clipped = [self._clip_to_core(self._folded(lay, bn)[0].detach(), core)
                   for (lay, bn), core in zip(self._weighted(), cores)]
        probe = copy.deepcopy(self.model).eval()
        twin = _weighted_layers(probe, self.input_shape, self.dt)
        for w, wf in zip(twin, clipped):
            _set_folded(w.layer, w.bn, wf)
        graph = to_nir(probe.deploy_modules(), self.input_shape, self.dt)
        plan = compile_graph(graph, self.dt, precision="fixed", input_shape=self.input_shape,
                             input_scale=cfg.input_scale, input_max=cfg.input_max,
                             per_neuron_scale=cfg.scale == "neuron", weight_bits=cfg.weight_bits)
        index = {w.name: i for i, w in enumerate(self.weighted)}
        targets: list[tuple[Any, np.ndarray, str, Any, Any]] = []  # (layer or readout, gain, weights, vth, neuron)
        for lay in plan.layers:
            lf = loihi_form(discretize(graph.nodes[lay.name], self.dt), v_init=0.0)
            gain = np.broadcast_to(np.asarray(lf.input_gain, dtype=np.float64), lay.shape).reshape(-1)
            vth = None if not lay.spiking or lf.vth is None else (
                np.broadcast_to(np.asarray(lf.vth, dtype=np.float64), lay.shape).reshape(-1))
            targets.append((lay, gain, self.feeds[lay.name], vth, lf))
        if plan.readout.conns:
            targets.append((plan.readout, np.ones(plan.readout.size), self.feeds["output"], None, None))
        grids: list[_Grid | None] = [None] * len(self.weighted)
        limited = 0
        rep: dict[str, Any] = {"layers": {}}
        for tgt, gain, node, vth, lf in targets:
            where = getattr(tgt, "name", "readout")
            primary = [c for c in tgt.conns if "residual_of" not in c.report]
            pieces = {_pieces(tgt, c) for c in primary}
            if len(pieces) != 1:  # one weight layer read from several sources: each source's own connection
                raise UserError(f"--qat loihi: the connections of {node} into {where} got different Loihi "
                                f"exponents or sign modes ({sorted(pieces)}): one weight grid cannot hold them")
            in_scales = {plan.input_scale if c.source == plan.input_name else 1.0 for c in primary}
            if len(in_scales) != 1:
                raise UserError(f"--qat loihi: {where} reads the input and neuron layers through {node} with "
                                f"different scales (input_scale {plan.input_scale})")
            fixed = list(pieces.pop())
            w = self.weighted[index[node]].layer.weight
            out = w.shape[0]
            sigma = np.broadcast_to(np.asarray(tgt.scale, dtype=np.float64), (len(gain),))
            if vth is not None:  # the threshold mantissa round(sigma * vth) is exact when sigma * vth is an integer
                sigma = np.maximum(np.ceil(sigma * vth - 1e-9), 1.0) / vth  # up: the row max clips onto the top
            in_scale = in_scales.pop()
            rows = (sigma * gain / in_scale).reshape(out, -1)
            m = np.median(rows, axis=1)
            limited += int((np.abs(rows - m[:, None]) > 1e-9 * m[:, None]).sum())
            top = (MANT_MIXED if fixed[0][1] else MANT_SINGLE) * 2.0 ** fixed[0][0]
            grid = _Grid(torch.from_numpy(m.copy()), fixed, top)
            if lf is not None:
                own = np.broadcast_to(np.asarray(lf.bias, dtype=np.float64), tgt.shape).reshape(out, -1)[:, 0]
                membrane = bool(np.all(np.asarray(lf.du, dtype=np.float64) == 1.0))
                _bias_grid(grid, membrane, own, gain.reshape(out, -1)[:, 0], in_scale)
            grids[index[node]] = grid
            rep["layers"][where] = {"weights": node, "exponents": [e for e, _ in fixed],
                                    "scale_min": float(m.min()), "scale_max": float(m.max())}
        missing = [w.name for w, g in zip(self.weighted, grids) if g is None]
        if missing:
            raise UserError(f"--qat loihi: {', '.join(missing)} feeds no neuron layer or readout")
        self.grids = grids  # type: ignore[assignment]
        rep["limited_rows"] = limited
        self.report = rep

    def _quantized(self, i: int, w: torch.Tensor) -> torch.Tensor:
        """``w`` on grid ``i``: straight-through inside the range, no gradient where it clips."""
        from neuromoco.deploy.loihi.fixed_point import split_weights

        g = self.grids[i]
        m = g.m.to(device=w.device, dtype=torch.float64).reshape(-1, *([1] * (w.dim() - 1)))
        real = (w.double() * m).clamp(-g.top, g.top)
        with torch.no_grad():
            total, _ = split_weights(real.detach(), fixed=g.pieces)
            shrink = self.shrink[i] if i < len(self.shrink) else None
            if shrink is not None:
                total = _shrunk(total, real.detach(), g, shrink)
        wc = (real / m).to(w.dtype)
        return wc + ((total / m).to(w.dtype) - wc).detach()

    def _quantized_bias(self, i: int, b: torch.Tensor) -> torch.Tensor:
        """The folded bias ``b`` on grid ``i``'s bias grid (straight-through); unchanged for a readout."""
        g = self.grids[i]
        if g.bias_factor is None:
            return b
        from neuromoco.deploy.loihi.fixed_point import split_bias

        with torch.no_grad():
            m = g.m.to(device=b.device, dtype=torch.float64)
            u, off = g.bias_factor * m, g.bias_own.to(m) * m
            x = b.detach().double() * u + off
            if g.bias_split:
                mant, exp, _ = split_bias(x.cpu().numpy())
                q = torch.from_numpy(mant * 2.0 ** exp).to(x)
            else:
                q = torch.round(x)
            bq = ((q - off) / u).to(b.dtype)
        return b + (bq - b).detach()

    def quantized_biases(self) -> list[torch.Tensor | None]:
        """Every weight layer's folded bias on its grid (no gradient; None where the layer has none)."""
        with torch.no_grad():
            out: list[torch.Tensor | None] = []
            for i, (lay, bn) in enumerate(self._weighted()):
                b = self._folded(lay, bn)[1]
                out.append(None if b is None else self._quantized_bias(i, b))
            return out

    def quantized_weights(self) -> list[torch.Tensor]:
        """Every weight layer's folded, core-clipped (per-neuron scales) weight on its grid (no gradient)."""
        cores = self._core_taps()
        with torch.no_grad():
            return [self._quantized(i, self._clip_to_core(self._folded(lay, bn)[0], cores[i]))
                    for i, (lay, bn) in enumerate(self._weighted())]

    # ---------------------------------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.grids:
            raise RuntimeError("LoihiQAT.update_grid() must run before the first forward pass")
        if not hasattr(self, "_cores"):
            self._cores = self._core_taps()
        weights: dict[str, torch.Tensor] = {}
        for i, w in enumerate(self.weighted):
            wf, b = self._folded(w.layer, w.bn)
            wq = self._quantized(i, self._clip_to_core(wf, self._cores[i]))
            if w.bn is not None:  # the BatchNorm (on its running statistics) multiplies its scale back in
                wq = wq / _safe(_bn_scale(w.bn)).reshape(-1, *([1] * (wq.dim() - 1)))
            weights[w.param] = wq
            if b is not None and self.grids[i].bias_factor is not None:
                shift = self._quantized_bias(i, b) - b  # straight-through: zero gradient, the grid's offset
                weights[w.bias_param] = (w.bn if w.bn is not None else w.layer).bias + shift
        modes = [bn.training for bn in self._bns]
        for bn in self._bns:
            bn.eval()  # the frozen statistics the export folds
        try:
            return torch.func.functional_call(self.model, weights, (x,))
        finally:
            for bn, mode in zip(self._bns, modes):
                bn.train(mode)


def _bn_scale(bn: nn.Module) -> torch.Tensor:
    return bn.weight / torch.sqrt(bn.running_var + bn.eps)


def _safe(s: torch.Tensor) -> torch.Tensor:
    return torch.where(s == 0, torch.ones_like(s), s)


def _bias_grid(grid: _Grid, membrane: bool, own: np.ndarray, gain: np.ndarray, in_scale: float) -> None:
    """The plan's bias grid for a neuron layer's weight layer: a constant input ``b`` of the layer arrives as
    ``gain * b`` volts per step; without a current filter (``membrane``) it joins the membrane bias (``64 *
    sigma`` units per volt, 13-bit mantissa and 3-bit exponent, after the neuron's ``own`` bias), else the
    synaptic bias (``sigma`` units per volt, rounded). With ``m = sigma * gain / in_scale`` per output
    channel, both are multiples of ``m``."""
    from neuromoco.deploy.loihi.fixed_point import ACT_SHIFT

    per_volt = float(1 << ACT_SHIFT) if membrane else 1.0
    grid.bias_factor = per_volt * in_scale
    grid.bias_own = torch.from_numpy(own / gain * per_volt * in_scale if membrane else np.zeros(len(gain)))
    grid.bias_split = membrane


def _pieces(tgt: Any, conn: Any) -> tuple[tuple[int, bool], ...]:
    """The (exponent, mixed sign) of each 8-bit piece of ``conn`` as the plan chose them (a residual piece of
    ``weight_bits=16``: from its mantissas)."""
    fixed = [(int(conn.report.get("weight_exp", 0)), conn.report.get("sign_mode", "mixed") == "mixed")]
    for c in tgt.conns:
        if c.report.get("residual_of") == conn.source:
            d = c.kernel.weight[c.kernel.weight != 0] if c.kernel is not None else c.matrix.data
            fixed.append((int(c.weight_exp), bool(d.size and d.min() < 0 < d.max())))
    return tuple(fixed)


def _weighted_layers(model: nn.Module, input_shape: list[int], dt: float) -> list[_Weighted]:
    """The classifier's conv / linear layers in export order, each with its BatchNorm, node name, parameter
    name and input shape; refuses what has no grid (average pooling scales the weights it composes with)."""
    modules = model.deploy_modules()
    try:
        layers, _ = flatten_graph(modules)
        planned, _ = plan_graph(modules, input_shape, dt)
    except ExportError as err:
        raise UserError(f"--qat loihi: {err}") from None
    if any(isinstance(lay.module, nn.AvgPool2d) for lay in layers):
        raise UserError("--qat loihi supports sum pooling (SumPool2d) only: average pooling scales the composed "
                        "weights")
    params = {id(p): n for n, p in model.named_parameters()}
    shapes = {"input": tuple(input_shape), **{p.name: p.shape for p in planned}}
    kept = iter(planned)  # fold_graph keeps every layer but the BatchNorms, in order
    out: list[_Weighted] = []
    for k, lay in enumerate(layers):
        if isinstance(lay.module, _BN):
            continue
        node = next(kept)
        if isinstance(lay.module, _WEIGHTED):
            bn = next((b.module for b in layers[k + 1:] if isinstance(b.module, _BN) and b.inputs == (k,)), None)
            owner = bn if bn is not None else lay.module
            bias = params.get(id(owner.bias)) if getattr(owner, "bias", None) is not None else None
            out.append(_Weighted(lay.module, bn, node.name, params[id(lay.module.weight)], bias,
                                 shapes[node.inputs[0]]))
    return out


def _feeding_weights(graph: Any, weighted: set[str]) -> dict[str, str]:
    """Per neuron node (and ``"output"``), the one weight node its connections pass through.

    Only reshapes (Flatten) may lie between the weight node and the neuron: a pooling there sums the
    weights of several positions, and the plan's grid would be on those sums, not on the layer's weights.
    """
    from neuromoco.deploy.graph import structure
    from neuromoco.deploy.nodes import NEURON_TYPES

    st = structure(graph)
    neurons = {n for n, node in graph.nodes.items() if isinstance(node, NEURON_TYPES)}
    out: dict[str, str] = {}
    for target in [*sorted(neurons), st.output]:
        found: set[str] = set()
        stack = [src for src, _ in st.preds[target]]
        while stack:
            n = stack.pop()
            if n in weighted:
                found.add(n)
            elif n in neurons or n == st.input:
                continue  # an unweighted path (an identity) carries no grid
            elif isinstance(graph.nodes[n], nir.Flatten):
                stack += [src for src, _ in st.preds[n]]
            else:
                raise UserError(f"--qat loihi: {type(graph.nodes[n]).__name__} node {n} lies between a weight "
                                f"layer and {target}: it composes several weights into one, off the grid. Put "
                                "pooling after the neuron layer (as cnn3-34 and sew-resnet8-34 do)")
        if len(found) > 1:
            raise UserError(f"--qat loihi: {target} sums the outputs of {', '.join(sorted(found))}: one grid per "
                            "neuron layer needs one weight layer feeding it")
        if found:
            out[target] = found.pop()
    return out


def _core_taps_1d(m: nn.Conv1d, shape: list[int]) -> torch.Tensor:
    ones = torch.ones(1, shape[0], 1, shape[1], dtype=torch.float64)
    cols = F.unfold(ones, (1, m.kernel_size[0]), (1, m.dilation[0]), (0, m.padding[0]), (1, m.stride[0]))
    return (cols[0] > 0).all(-1).reshape(m.weight.shape[1:])


# ------------------------------------------------------------------------------------------ training use
def _batchnorms(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, _BN)]


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, loader: Any, device: torch.device, batches: int = 16) -> int:
    """Re-estimate every BatchNorm's running statistics on ``batches`` training batches (cumulative average),
    as the frozen statistics QAT folds; returns the number of batches seen."""
    from neuromoco.train.engine.loops import time_major

    bns = _batchnorms(model)
    if not bns:
        return 0
    was = model.training
    saved = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    model.train()
    n = 0
    for frames, _ in loader:
        model(time_major(frames.to(device)))
        n += 1
        if n >= batches:
            break
    for bn, mom in zip(bns, saved):
        bn.momentum = mom
    model.train(was)
    return n


def project_state_dict(model: nn.Module, config: QATConfig, input_shape: list[int]) -> dict[str, torch.Tensor]:
    """The classifier's state dict with every weight replaced so that its folded weight lies on the grid
    (what ``model.nir`` is exported from): the grid is computed from these very weights first."""
    model = copy.deepcopy(model).eval()
    qat = LoihiQAT(model, config, input_shape)
    original = copy.deepcopy(model.state_dict())
    qat.update_grid()
    target = [copy.deepcopy(g) for g in qat.grids]
    qat.shrink = [None] * len(target)
    for _ in range(PROJECTION_ROUNDS):
        qat.grids = [copy.deepcopy(g) for g in target]
        model.load_state_dict(original)  # always the trained weights onto the newest grid: no drift
        _write_folded(qat, qat.quantized_weights())
        qat.update_grid()
        if all(_same_grid(a, b) for a, b in zip(qat.grids, target)):
            break
        for i, (got, want) in enumerate(zip(qat.grids, target)):
            if got.pieces != want.pieces or got.m.shape != want.m.shape:
                target[i], qat.shrink[i] = copy.deepcopy(got), None
                continue
            g_m, w_m = got.m.numpy(), want.m.numpy()
            shrink = np.zeros(len(w_m), dtype=np.int64) if qat.shrink[i] is None else qat.shrink[i]
            higher, lower = g_m > w_m * (1 + 1e-12), g_m < w_m * (1 - 1e-12)
            # the plan allows a larger scale: take it; a smaller one: the 24-bit state bound, which sums the
            # row's own weight magnitudes, binds just below this scale, so round a few more weights down
            want.m[torch.from_numpy(higher)] = got.m[torch.from_numpy(higher)]
            shrink = np.where(higher, 0, np.where(lower, np.maximum(1, 2 * shrink), shrink))
            qat.shrink[i] = shrink
    qat.shrink = []
    return model.state_dict()


#: projections tried until the plan's grid of the projected weights is the grid they were projected onto
PROJECTION_ROUNDS = 10


def _same_grid(a: _Grid, b: _Grid) -> bool:
    return a.pieces == b.pieces and a.m.shape == b.m.shape and bool(
        torch.allclose(a.m, b.m, rtol=1e-12, atol=0.0))


def _shrunk(total: torch.Tensor, real: torch.Tensor, grid: _Grid, counts: np.ndarray) -> torch.Tensor:
    """``total`` with, per output channel ``c``, the ``counts[c]`` weights that rounded up the most in
    magnitude rounded down one grid step instead (never a channel's largest weight, never to zero): it
    lowers the channel's sum of magnitudes, which the plan's 24-bit state bound reads, by the least error."""
    if len(grid.pieces) != 1 or not counts.any():
        return total
    exp, mixed = grid.pieces[0]
    step = 2.0 ** exp * (2.0 if mixed else 1.0)
    out = total.clone().reshape(total.shape[0], -1)
    mag, wanted = out.abs(), real.reshape(total.shape[0], -1).abs()
    eligible = (mag >= 2 * step) & (mag < grid.top * (1 - 1e-12))
    score = torch.where(eligible, mag - wanted, torch.full_like(mag, -torch.inf))
    for c in np.flatnonzero(counts):
        k = int(min(counts[c], int(eligible[c].sum())))
        if k:
            idx = torch.topk(score[c], k).indices
            out[c, idx] -= torch.sign(out[c, idx]) * step
    return out.reshape(total.shape)


@torch.no_grad()
def _write_folded(qat: LoihiQAT, folded: list[torch.Tensor]) -> None:
    """Set every weight layer so that its BatchNorm-folded weight is ``folded``.

    A row's scale can depend on its own weights (the 24-bit state bound sums their magnitudes), so the
    caller re-derives the grid from the projected weights and projects again until the two agree."""
    for (layer, bn), wq in zip(qat._weighted(), folded):
        _set_folded(layer, bn, wq)
    for (layer, bn), bq in zip(qat._weighted(), qat.quantized_biases()):
        if bq is not None:
            _set_folded_bias(layer, bn, bq)


@torch.no_grad()
def _set_folded_bias(layer: nn.Module, bn: nn.Module | None, bf: torch.Tensor) -> None:
    """Set the BatchNorm's beta (or the layer's bias) so that the folded bias is ``bf``."""
    if bn is None:
        layer.bias.copy_(bf)
        return
    s = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
    b0 = layer.bias.double() if layer.bias is not None else torch.zeros_like(s)
    bn.bias.copy_((bf.double() - (b0 - bn.running_mean.double()) * s).to(bn.bias.dtype))


@torch.no_grad()
def _set_folded(layer: nn.Module, bn: nn.Module | None, wf: torch.Tensor) -> None:
    """Set ``layer.weight`` so that, with ``bn`` folded in, it is ``wf``."""
    if bn is None:
        layer.weight.copy_(wf)
        return
    s = _safe(bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps))
    layer.weight.copy_((wf.double() / s.reshape(-1, *([1] * (wf.dim() - 1)))).to(layer.weight.dtype))


__all__ = [
    "QAT_CHOICES",
    "LoihiQAT",
    "QATConfig",
    "calibrate_batchnorm",
    "config_from_args",
    "project_state_dict",
]
