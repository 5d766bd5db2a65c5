"""The Lava target's own two Lava processes and their CPU models (``floating_pt`` and ``fixed_pt``).

``NirNeuron``: Loihi's CUBA LIF (Lava's own ``subthr_dynamics``, float or bit-accurate fixed point) with
what Lava's ``LIF`` / ``LIFReset`` lack and NIR graphs need: per-neuron ``du``, ``dv`` and threshold; a
state reset at the start of every sample window to ``u = 0, v = v0`` (``v0 = -v_reset``: Loihi resets to
zero, the NIR voltage origin is shifted by ``v_reset``); a synaptic bias ``b0`` that enters the current
like a constant input (from every window step) and ``b1`` (from the second window step on: a bias that
reaches the neuron through a recurrent edge); a second input port ``r_in`` for recurrent connections,
whose input is dropped at a window's first step (the previous sample's last spikes must not leak into the
next sample); and a non-spiking mode (NIR ``LI`` / ``CubaLI``) that sends its voltage.

``Recorder``: writes what arrives at its port every step into a ``numpy.memmap`` file, either the per-tile
sum (spike counts of each of the ``groups`` samples laid side by side) or the whole vector. Writing to a
file from the process avoids moving large ``Var`` contents back through Lava's runtime channels.

``DelaySparse`` (Lava's own process, for a connection with an added delay: a skip connection's short path)
runs with Lava's own models, ``PyDelaySparseModelFloat`` and ``PyDelaySparseModelBitAcc``, subclassed
only to keep the delay-stacked weight matrix they rebuild from ``weights`` and ``delays`` on every step
(``get_delay_wgts_mat``: about 100 times the cost of the product itself). The weights of these
connections never change (no learning), so the matrix is built once -- in the bit-accurate model after its
first step's clipping and truncation, as the parent computes it -- and every step's arithmetic is the
parent's, bit for bit.

A window starts at time steps ``t`` with ``t % period == offset % period`` (``t`` counts from 1, as Lava's
``time_step`` does), the convention of Lava's ``LIFReset``.

Lava's compiler finds a process's models by executing every module in the process's folder as a
stand-alone module; in this package that would run the whole target's code (and fail on its dataclasses).
So the runner names the models itself (:data:`MODELS`, as ``Loihi2SimCfg(exception_proc_model_map=...)``):
exactly the ones the compiler's search picks with ``select_tag`` -- and no search. Import
:mod:`neuromoco.deploy.targets.lava.compat` (``import_lava()``) before importing this module.
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.lif.models import AbstractPyLifModelFixed, AbstractPyLifModelFloat
from lava.proc.sparse.models import PyDelaySparseModelBitAcc, PyDelaySparseModelFloat
from lava.proc.sparse.process import DelaySparse


class NirNeuron(AbstractProcess):
    """CUBA neuron with per-neuron parameters, windowed reset to ``v0``, synaptic biases and a recurrent port.

    Float: ``u = (1-du) u + a ; v = (1-dv) v + u + bias_mant ; s = v > vth ; v = 0 where s`` with
    ``a = a_in + b0 (+ r_in + b1 after a window's first step)``. Fixed point: Lava's bit-accurate Loihi
    arithmetic (12-bit decays, ``a << 6``, ``bias_mant << bias_exp``, ``vth << 6``, 24-bit states).
    """

    def __init__(self, *, shape: tuple[int, ...], du, dv, vth, bias_mant, bias_exp=0, b0=0, b1=0, v0=0,
                 period: int = 1, offset: int = 0, spiking: bool = True, name: str | None = None) -> None:
        super().__init__(shape=shape, period=int(period), offset=int(offset), spiking=bool(spiking), name=name)
        self.a_in = InPort(shape=shape)
        self.r_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.u = Var(shape=shape, init=0)
        self.v = Var(shape=shape, init=v0)
        self.du = Var(shape=shape, init=du)
        self.dv = Var(shape=shape, init=dv)
        self.vth = Var(shape=shape, init=vth)
        self.bias_mant = Var(shape=shape, init=bias_mant)
        self.bias_exp = Var(shape=shape, init=bias_exp)
        self.b0 = Var(shape=shape, init=b0)
        self.b1 = Var(shape=shape, init=b1)
        self.v0 = Var(shape=shape, init=v0)


class _Window:
    """Window bookkeeping shared by both models."""

    def _setup_window(self, proc_params) -> None:
        self.period = max(1, int(proc_params["period"]))
        self.offset = int(proc_params["offset"]) % self.period
        self.spiking = bool(proc_params["spiking"])

    def _window_start(self) -> bool:
        return self.time_step % self.period == self.offset


@implements(proc=NirNeuron, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyNirNeuronFloat(_Window, AbstractPyLifModelFloat):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    r_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    u: np.ndarray = LavaPyType(np.ndarray, float)
    v: np.ndarray = LavaPyType(np.ndarray, float)
    du: np.ndarray = LavaPyType(np.ndarray, float)
    dv: np.ndarray = LavaPyType(np.ndarray, float)
    vth: np.ndarray = LavaPyType(np.ndarray, float)
    bias_mant: np.ndarray = LavaPyType(np.ndarray, float)
    bias_exp: np.ndarray = LavaPyType(np.ndarray, float)
    b0: np.ndarray = LavaPyType(np.ndarray, float)
    b1: np.ndarray = LavaPyType(np.ndarray, float)
    v0: np.ndarray = LavaPyType(np.ndarray, float)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self._setup_window(proc_params)

    def run_spk(self) -> None:
        a = self.a_in.recv()
        r = self.r_in.recv()
        if self._window_start():
            self.u[:] = 0
            self.v[:] = self.v0
            a = a + self.b0
        else:
            a = a + self.b0 + (r + self.b1)
        self.subthr_dynamics(activation_in=a)  # Lava's own float CUBA update
        if self.spiking:
            s = self.v > self.vth
            self.v[s] = 0
            self.s_out.send(s)
        else:
            self.s_out.send(self.v.copy())


@implements(proc=NirNeuron, protocol=LoihiProtocol)
@requires(CPU)
@tag("bit_accurate_loihi", "fixed_pt")
class PyNirNeuronFixed(_Window, AbstractPyLifModelFixed):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    r_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    u: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    v: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    du: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=12)
    dv: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=12)
    vth: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=17)
    bias_mant: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=13)
    bias_exp: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=3)
    b0: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    b1: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    v0: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self._setup_window(proc_params)

    def run_spk(self) -> None:
        a = np.asarray(self.a_in.recv()).astype(np.int64)
        r = np.asarray(self.r_in.recv()).astype(np.int64)
        if self._window_start():
            self.u[:] = 0
            self.v[:] = self.v0
            a = a + self.b0
        else:
            a = a + self.b0 + r + self.b1
        self.scale_bias()
        effective_vth = np.left_shift(self.vth.astype(np.int64), self.vth_shift)
        self.subthr_dynamics(activation_in=a)  # Lava's bit-accurate Loihi update
        if self.spiking:
            s = self.v > effective_vth
            self.v[s] = 0
            self.s_out.send(s.astype(np.int32))
        else:
            self.s_out.send(self.v.copy())


class Recorder(AbstractProcess):
    """Writes its input every step into ``path`` (float64 memmap ``[steps, width]``).

    ``mode="count"``: ``width = groups``, the input summed over each of ``groups`` equal tiles;
    ``mode="full"``: ``width = n``, the whole input.
    """

    def __init__(self, *, n: int, steps: int, path: str, mode: str = "count", groups: int = 1,
                 name: str | None = None) -> None:
        super().__init__(n=int(n), steps=int(steps), path=str(path), mode=mode, groups=int(groups), name=name)
        self.s_in = InPort(shape=(int(n),))


@implements(proc=Recorder, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt", "fixed_pt")
class PyRecorderModel(PyLoihiProcessModel):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self.mode = proc_params["mode"]
        self.groups = int(proc_params["groups"])
        self.steps = int(proc_params["steps"])
        width = self.groups if self.mode == "count" else int(proc_params["n"])
        self.out = np.memmap(proc_params["path"], dtype=np.float64, mode="r+", shape=(self.steps, width))

    def run_spk(self) -> None:
        x = np.asarray(self.s_in.recv(), dtype=np.float64)
        t = self.time_step - 1
        if t < self.steps:
            self.out[t] = x.reshape(self.groups, -1).sum(axis=1) if self.mode == "count" else x
        if t == self.steps - 1:
            self.out.flush()


class _StaticDelayWeights:
    """``calc_act`` of Lava's delay synapse with the delay-stacked weight matrix built once (static weights)."""

    _stacked = None

    def calc_act(self, s_in) -> np.ndarray:
        if self._stacked is None:
            self._stacked = self.get_delay_wgts_mat(self.weights, self.delays, self.a_buff.shape[-1] - 1)
        return np.reshape(self._stacked.dot(s_in), (self.a_buff.shape[-1], self.weights.shape[0])).T


class PyDelaySparseStaticFloat(_StaticDelayWeights, PyDelaySparseModelFloat):
    """Lava's floating-point ``DelaySparse`` model, its stacked weights built once."""


class PyDelaySparseStaticFixed(_StaticDelayWeights, PyDelaySparseModelBitAcc):
    """Lava's bit-accurate ``DelaySparse`` model, its stacked weights built once (after the first step's
    clipping and truncation of ``weights``, which happen before the first ``calc_act``)."""


# the model of each process per select_tag: what Loihi2SimCfg(select_tag=...) picks among these classes
MODELS: dict[str, dict[type[AbstractProcess], type[PyLoihiProcessModel]]] = {
    "floating_pt": {NirNeuron: PyNirNeuronFloat, Recorder: PyRecorderModel, DelaySparse: PyDelaySparseStaticFloat},
    "fixed_pt": {NirNeuron: PyNirNeuronFixed, Recorder: PyRecorderModel, DelaySparse: PyDelaySparseStaticFixed},
}
