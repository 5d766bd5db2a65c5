"""Discrete-time meaning of NIR's neuron nodes: the one definition every executor and target follows.

NIR neurons are continuous-time ODEs; this project integrates them with one forward-Euler step of
length ``dt`` (stated in the model card, or ``--dt`` for graphs from other tools). Per time step, with
``I`` the input arriving at the node:

    CubaLIF / CubaLI   i = i + k_syn * (w_in * I - i)           k_syn = dt / tau_syn   (current first)
                       then the LIF / LI update below with i as its input
    LIF / LI           v = v + k_mem * (r * I + v_leak - v)       k_mem = dt / tau_mem
    IF                 v = v + r * I                              (no leak, no dt: snnTorch/Sinabs meaning)
    spike (LIF, IF, CubaLIF)   s = v > v_threshold ;  v = v_reset where s   (reset to a value)

The LIF line is Norse's box-LIF expression in Norse's evaluation order, so a Norse-trained model and the
reference executor agree bit for bit in float32. ``k`` is formed like Norse forms it: ``dt * (1/tau)``
with ``1/tau`` rounded to the compute dtype first (see :func:`euler_gain`).

Loihi's CUBA neuron (``u = (1-du) u + a_in ; v = (1-dv) v + u + bias ; s = v > vth ; v = 0 where s``)
is the same recurrence, rearranged; :func:`loihi_form` gives its constants. A non-zero ``v_reset``
is mapped by shifting the voltage origin (Loihi resets to 0), which turns the leak toward ``v_reset``
into a bias and moves the threshold; nothing is silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import nir
import numpy as np

from neuromoco.deploy.nodes import NEURON_TYPES, NODES, SPIKING_TYPES  # noqa: F401 - re-exported


def euler_gain(dt: float, tau: np.ndarray, dtype: type = np.float32) -> np.ndarray:
    """``dt / tau`` formed as Norse forms ``dt * tau_mem_inv``: ``(1/tau)`` rounded to ``dtype``, times dt."""
    inv: np.ndarray = (1.0 / np.asarray(tau, dtype=np.float64)).astype(dtype)
    return (dtype(dt) * inv).astype(dtype)


@dataclass(frozen=True)
class DiscreteNeuron:
    """A NIR neuron node's parameters for forward-Euler steps of ``dt`` (arrays broadcast to ``shape``)."""

    kind: str  # "LIF", "IF", "LI", "CubaLIF", "CubaLI"
    shape: tuple[int, ...]
    dt: float
    tau_mem: np.ndarray | None  # None for IF (no leak term)
    r: np.ndarray
    v_leak: np.ndarray
    v_threshold: np.ndarray | None  # None for the non-spiking LI / CubaLI
    v_reset: np.ndarray
    tau_syn: np.ndarray | None = None  # Cuba* only
    w_in: np.ndarray | None = None  # Cuba* input weight

    @property
    def spiking(self) -> bool:
        return self.v_threshold is not None

    @property
    def has_current(self) -> bool:
        return self.tau_syn is not None

    def k_mem(self, dtype: type = np.float64) -> np.ndarray:
        """``dt / tau_mem`` (zero for IF), formed as Norse forms it when ``dtype`` is float32."""
        if self.tau_mem is None:
            return np.zeros(self.shape, dtype=dtype)
        return euler_gain(self.dt, self.tau_mem, dtype)

    def k_syn(self, dtype: type = np.float64) -> np.ndarray | None:
        return None if self.tau_syn is None else euler_gain(self.dt, self.tau_syn, dtype)


def _arr(x: object, shape: tuple[int, ...]) -> np.ndarray:
    return np.broadcast_to(np.asarray(x, dtype=np.float64), shape).copy()


def neuron_shape(node: nir.NIRNode) -> tuple[int, ...]:
    """The shape of a neuron node's state, from its parameters."""
    for name in ("tau", "tau_mem", "r", "v_threshold"):
        if hasattr(node, name) and np.ndim(getattr(node, name)) > 0:
            return tuple(np.shape(getattr(node, name)))
    return ()


def discretize(node: nir.NIRNode, dt: float) -> DiscreteNeuron:
    """The per-step parameters of a NIR neuron node for a step of ``dt`` seconds."""
    kind = type(node).__name__
    row = NODES.get(type(node))
    if row is None or row.role != "neuron":
        raise TypeError(f"{kind} is not a neuron node")
    shape = neuron_shape(node)
    v_reset = _arr(getattr(node, "v_reset", 0.0), shape)
    v_th = _arr(node.v_threshold, shape) if row.spiking else None
    if not row.leak:  # IF
        return DiscreteNeuron(kind, shape, dt, None, _arr(node.r, shape), _arr(0.0, shape), v_th, v_reset)
    tau_mem = _arr(node.tau_mem if hasattr(node, "tau_mem") else node.tau, shape)
    tau_syn = w_in = None
    if row.current:
        tau_syn, w_in = _arr(node.tau_syn, shape), _arr(getattr(node, "w_in", 1.0), shape)
    return DiscreteNeuron(kind, shape, dt, tau_mem, _arr(node.r, shape), _arr(node.v_leak, shape),
                          v_th, v_reset, tau_syn, w_in)


@dataclass(frozen=True)
class LoihiNeuron:
    """Constants of Loihi's CUBA neuron equivalent to a :class:`DiscreteNeuron` (voltage origin at v_reset).

    ``u = (1-du) u + input_gain * a_in ; v' = (1-dv) v' + u + bias ; s = v' > vth ; v' = 0 where s``
    with ``v' = v - v_reset``; ``v0`` is the initial value of ``v'`` (the reference starts at v = 0,
    Norse at v = v_leak: the exporter writes what the trained model starts from).
    """

    du: np.ndarray
    dv: np.ndarray
    input_gain: np.ndarray  # fold into the incoming weights
    bias: np.ndarray
    vth: np.ndarray | None
    v0: np.ndarray


def loihi_form(n: DiscreteNeuron, v_init: np.ndarray | float = 0.0) -> LoihiNeuron:
    """Rearrange the Euler step into Loihi's CUBA form (exact in real arithmetic)."""
    k, r = n.k_mem(), n.r
    if n.kind == "IF":
        dv, gain, bias = np.zeros(n.shape), r.copy(), np.zeros(n.shape)
    else:  # v = (1-k) v + k r I + k v_leak ; shift origin by v_reset: bias = k (v_leak - v_reset)
        dv, gain, bias = k.copy(), k * r, k * (n.v_leak - n.v_reset)
    if n.has_current:  # i = (1-k_syn) i + k_syn w_in I ; u := gain * i
        k_syn = n.k_syn()
        if k_syn is None or n.w_in is None:
            raise ValueError(f"{n.kind}: a neuron with a synaptic current needs tau_syn and w_in")
        du, gain = k_syn, gain * k_syn * n.w_in
    else:
        du = np.ones(n.shape)
    vth = None if n.v_threshold is None else n.v_threshold - n.v_reset
    return LoihiNeuron(du, dv, gain, bias, vth, np.asarray(v_init, dtype=np.float64) - n.v_reset)
