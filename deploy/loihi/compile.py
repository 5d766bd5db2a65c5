"""From a NIR graph to a :class:`~.plan.LavaPlan`: neuron layers, composed connections, delays, fixed point.

The graph is checked and laid out (:mod:`.layout`: units, delays, the synaptic delay added to every
connection that arrives early: a skip connection), everything between neuron layers is
composed into one connection per source (:mod:`.compose`: a shared kernel where the chain is a convolution, else
a sparse matrix), and every neuron node becomes a layer:

* Neuron constants come from :func:`neuromoco.deploy.semantics.loihi_form` (Loihi's CUBA form, voltage
  origin shifted by ``v_reset``); its input gain is folded into the rows of the incoming maps (a kernel's
  output channels).
* Biases: a constant input to a neuron with ``du = 1`` is a membrane bias (Lava's ``bias_mant``); with
  ``du < 1`` it is a synaptic bias ``b0`` of the custom neuron; a bias that reaches a neuron through a
  recurrent edge starts one step late (``b1``). A bias in front of the Output is added on the host.

In fixed point the float plan is then quantized (:mod:`.fixed_point`).
"""

from __future__ import annotations

import nir
import numpy as np
import scipy.sparse as sp

from neuromoco.deploy.card import ModelCard
from neuromoco.deploy.graph import check_graph, node_io_shapes, normalize_graph, structure
from neuromoco.deploy.loihi.compose import Biases, Maps, as_matrix, compose, identity_source
from neuromoco.deploy.loihi.constants import WEIGHT_EXP_MIN
from neuromoco.deploy.loihi.fixed_point import check_fixed_point, quantize_plan
from neuromoco.deploy.loihi.kernel import Kernel
from neuromoco.deploy.loihi.layout import Layout, check_mappable, layout
from neuromoco.deploy.loihi.linear_ops import linear_op
from neuromoco.deploy.loihi.plan import Conn, LavaPlan, Layer, Readout, check_delays, report
from neuromoco.deploy.nodes import NODES
from neuromoco.deploy.semantics import discretize, loihi_form
from neuromoco.errors import UserError


def compile_graph(graph: nir.NIRGraph, dt: float | None, *, precision: str = "float",
                  input_shape: list[int] | None = None, input_scale: float = 1.0,
                  input_max: float = 15.0, per_neuron_scale: bool = True, weight_bits: int = 8,
                  sign_split: bool = False, min_weight_exp: int = WEIGHT_EXP_MIN) -> LavaPlan:
    """Check ``graph`` and turn it into a :class:`LavaPlan` (``precision`` ``"float"`` or ``"fixed"``).

    Raises :class:`UserError` naming the node for anything Lava cannot run.
    """
    if precision not in ("float", "fixed"):
        raise UserError(f"Lava precision must be float or fixed, not {precision!r}")
    g = normalize_graph(graph)
    check_graph(g, input_shape=input_shape)
    check_mappable(g)
    st = structure(g)
    io = node_io_shapes(g, input_shape)
    lay = layout(g, st)
    ops = {n: linear_op(g.nodes[n], n, io[n][0], io[n][1]) for n in lay.stateless}
    shapes = {n: tuple(io[n][1]) for n in lay.units}
    mats, biases = compose(st, lay, ops, shapes)
    layers = [neuron_layer(g.nodes[n], n, tuple(io[n][1]), dt, lay.delays[n], mats[n], biases[n])
              for n in lay.neurons]
    readout = build_readout(lay, tuple(io[st.output][0]), mats, biases)
    plan = LavaPlan(precision, dt, st.input, tuple(io[st.input][1]), layers, readout,
                    input_scale=float(input_scale), input_max=float(input_max))
    if precision == "fixed":
        check_fixed_point(plan)
        quantize_plan(plan, per_neuron=per_neuron_scale, weight_bits=int(weight_bits), sign_split=bool(sign_split),
                      min_weight_exp=int(min_weight_exp))
    set_delays(plan, lay)
    plan.report = report(plan)
    return plan


def compile_card(graph: nir.NIRGraph, card: ModelCard, *, precision: str, scale: str = "neuron",
                 weight_bits: int = 8, sign_split: bool = False, input_scale: float = 1.0,
                 input_max: float = 15.0, min_weight_exp: int = WEIGHT_EXP_MIN) -> LavaPlan:
    """:func:`compile_graph` with dt and the input shape from the model card, and the plan options by name
    (``scale``: ``"neuron"`` or ``"layer"``) as the Lava and ``reference-fixed`` targets declare them."""
    return compile_graph(graph, card.dt, precision=precision,
                         input_shape=list(card.input_shape) if card.input_shape else None,
                         input_scale=input_scale, input_max=input_max, per_neuron_scale=scale == "neuron",
                         weight_bits=weight_bits, sign_split=sign_split, min_weight_exp=min_weight_exp)


def set_delays(plan: LavaPlan, lay: Layout) -> None:
    """Every connection's added delay from the layout (again after quantization, which splits and rebuilds
    connections), then checked against the layers' delays."""
    for name, conns in [*((layer.name, layer.conns) for layer in plan.layers), (lay.output, plan.readout.conns)]:
        for c in conns:
            c.delay = lay.extra[name][(c.source, int(c.recurrent))]
    check_delays(plan)


def neuron_layer(node: nir.NIRNode, name: str, shape: tuple[int, ...], dt: float | None, delay: int,
                 mats: dict[tuple[str, int], sp.csr_matrix], biases: dict[int, np.ndarray]) -> Layer:
    """A neuron node as a float :class:`Layer`: Loihi CUBA constants, gain-folded connections, biases."""
    row = NODES[type(node)]
    if row.leak and dt is None:  # IF needs no dt (no leak); every other neuron integrates over dt
        raise UserError(f"node {name!r} ({type(node).__name__}) needs dt: give it in the model card")
    n = discretize(node, float(dt) if dt is not None else 1.0)
    lf = loihi_form(n, v_init=0.0)  # the reference starts every sample at v = 0, i = 0

    def full(a: object) -> np.ndarray:
        return np.broadcast_to(np.asarray(a, dtype=np.float64), shape).reshape(-1).copy()

    gain = full(lf.input_gain)
    conns = [gain_folded(src, bool(r), m, gain) for (src, r), m in mats.items()]
    du, dv, bias = full(lf.du), full(lf.dv), full(lf.bias)
    b0 = gain * biases.get(0, np.zeros(len(gain)))
    b1 = gain * biases.get(1, np.zeros(len(gain)))
    if np.all(du == 1.0) and np.any(b0):  # no current filter: a constant input is a membrane bias
        bias, b0 = bias + b0, np.zeros_like(b0)
    vth = full(lf.vth) if row.spiking else np.full(len(gain), np.inf)
    return Layer(name, type(node).__name__, shape, delay, row.spiking, du, dv, vth, bias, np.zeros_like(bias),
                 b0, b1, full(lf.v0), full(n.v_reset), conns)


def gain_folded(source: str, recurrent: bool, m: sp.csr_matrix | Kernel, gain: np.ndarray) -> Conn:
    """A connection with the target neurons' input gain folded into its rows (a kernel's output channels; a
    kernel whose channel's neurons differ in gain is expanded)."""
    if isinstance(m, Kernel):
        per_channel = m.per_channel(gain)
        if per_channel is not None:
            return Conn(source, None, recurrent, kernel=m.scaled(per_channel))
        m = as_matrix(m, source)
    return Conn(source, sp.csr_matrix(sp.diags(gain) @ m), recurrent)


def build_readout(lay: Layout, shape: tuple[int, ...], mats: Maps, biases: Biases) -> Readout:
    """What the Output receives: one neuron layer's output unchanged (``direct``), or connections + bias."""
    readout = Readout(lay.delays[lay.output], shape)
    out_mats = mats[lay.output]
    c0, c1 = biases[lay.output].get(0), biases[lay.output].get(1)
    ident = identity_source(out_mats)
    if ident is not None and ident in lay.neurons and c0 is None and c1 is None:
        readout.direct = ident
        readout.delay = lay.delays[ident]
        return readout
    if len(out_mats) == 0:
        raise UserError(f"the Output node {lay.output!r} receives nothing Lava can compute")
    if (lay.input, 0) in out_mats and ident == lay.input:
        raise UserError(f"the Input node {lay.input!r} feeds the Output node {lay.output!r} directly; "
                        "there is no network to run")
    readout.conns = [gain_folded(src, bool(r), m, np.ones(m.shape[0])) for (src, r), m in out_mats.items()]
    readout.c0, readout.c1 = c0, c1
    return readout
