"""The Lava target's own Lava processes and their CPU models (``floating_pt`` and ``fixed_pt``).

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

``PlanConv``: a plan's kernel connection (:class:`~neuromoco.deploy.loihi.kernel.Kernel`) as a convolution,
with flat ports in NIR's row-major ``[C, H, W]`` order and ``tiles`` samples side by side convolved as one
batch. Its timing and arithmetic are those of Lava's ``Sparse`` / ``DelaySparse`` on the expanded matrix,
bit for bit in ``fixed_pt`` (tests/test_lava_conv.py): ``a_out`` at step ``t`` is what arrived at ``t - 1 -
delay``; on the first step the kernel is clipped and truncated as Lava's bit-accurate ``Sparse`` does
(``num_weight_bits`` 8, the sign mode of the whole kernel); each step the int32 sum (wrapping at ``2**31``) is
shifted by ``weight_exp`` (``<<`` wraps in int32, ``>>`` rounds down). The float model is a float64
convolution (its sums in another order than ``Sparse``'s: equal within rounding). The convolution is
``Kernel.apply_numpy`` (windows of the padded image times the kernel through BLAS) in float64 on integers,
exact below ``2**53``. Where the kernel's only
weights of one sign sit at taps that never reach a real input (only the padding), the expanded matrix has
another sign mode than the kernel, and Lava's ``Sparse`` would truncate it differently; mantissas quantized
for the kernel's own sign mode (even ones when mixed, as the fixed-point plan makes them) are kept by both.

Lava 0.10's own ``Conv`` is not used; measured here (``fixed_pt`` and ``floating_pt``, CPU): it computes a true
convolution (the kernel flipped in both spatial directions, ``scipy.signal.convolve2d``; a NIR ``Conv2d`` is
a cross-correlation), on 3-d ``(X, Y, C)`` ports with ``(C_out, kx, ky, C_in)`` weights, symmetric padding
and no crop; in fixed point it ignores ``weight_exp`` (exponents 0 and 2 give the same output), keeps
weights beyond 8 bits and odd mixed-sign weights unchanged, casts its float64 sum to int32 (a sum beyond
``2**31`` becomes ``-2**31``, not a wrap) and wraps the result to 24 bits (modulo, not saturation); its
per channel pair loop takes about 0.3 s a step for 64x64 channels at 32x32 and 3 s for 512x512 channels at
8x8, against 16 and 26 ms for ``Kernel.apply`` on two samples (one thread). Lava disabled its torch path
because "torch calls inside Lava PyProcess hang": a Lava process is forked, and once the parent has used
torch's OpenMP pool, a parallel torch call in the child can never return (seen here even with the child's torch
set to one thread, once in a full test run). ``PlanConv``'s models therefore use no torch: NumPy and
OpenBLAS, which is fork-safe.

A window starts at time steps ``t`` with ``t % period == offset % period`` (``t`` counts from 1, as Lava's
``time_step`` does), the convention of Lava's ``LIFReset``.

Lava's compiler finds a process's models by executing every module in the process's folder as a
stand-alone module; in this package that would run the whole target's code (and fail on its dataclasses).
So the runner names the models itself (:data:`MODELS`, as ``Loihi2SimCfg(exception_proc_model_map=...)``):
exactly the ones the compiler's search picks with ``select_tag`` -- and no search. Import
:mod:`neuromoco.deploy.targets.lava.compat` (``import_lava()``) before importing this module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

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
from lava.utils.weightutils import clip_weights, determine_sign_mode, truncate_weights

from neuromoco.deploy.loihi.kernel import Kernel


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

    if TYPE_CHECKING:  # set by the Lava process model this mixes into
        time_step: int

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

    if TYPE_CHECKING:  # what Lava's DelaySparse models this mixes into provide
        weights: Any
        delays: Any
        a_buff: np.ndarray

        @staticmethod
        def get_delay_wgts_mat(weights: Any, delays: Any, max_delay: int) -> Any: ...

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


class PlanConv(AbstractProcess):
    """A plan's kernel connection (:class:`~neuromoco.deploy.loihi.kernel.Kernel`) on ``tiles`` samples side by
    side: flat ports ``s_in`` ``(tiles * n_in,)`` and ``a_out`` ``(tiles * n_out,)`` in NIR's row-major
    ``[C, H, W]`` order per tile; ``a_out`` at step ``t`` is the convolution of ``s_in`` at ``t - 1 - delay``.

    ``weight`` is the kernel ``[Co, Ci, kh, kw]`` (integer mantissas in fixed point); ``a_buf`` ``(n, delay + 1)``
    the activations in flight, column 0 the next to leave (``DelaySparse``'s ``a_buff`` with one delay).
    """

    def __init__(self, *, kernel: Kernel, tiles: int = 1, weight_exp: int = 0, delay: int = 0,
                 num_weight_bits: int = 8, num_message_bits: int = 24, name: str | None = None) -> None:
        n_out, n_in = kernel.shape
        if int(delay) < 0:
            raise ValueError(f"a connection's added delay must be >= 0, not {delay}")
        super().__init__(tiles=int(tiles), weight_exp=int(weight_exp), delay=int(delay),
                         num_weight_bits=int(num_weight_bits), stride=tuple(kernel.stride), pad=tuple(kernel.pad),
                         crop=kernel.crop, in_shape=tuple(kernel.in_shape), out_shape=tuple(kernel.out_shape),
                         name=name)
        self.s_in = InPort(shape=(int(tiles) * n_in,))
        self.a_out = OutPort(shape=(int(tiles) * n_out,))
        self.weight = Var(shape=kernel.weight.shape, init=kernel.weight)
        self.a_buf = Var(shape=(int(tiles) * n_out, int(delay) + 1), init=0)
        self.num_message_bits = Var(shape=(1,), init=int(num_message_bits))


class _PlanConvModel(PyLoihiProcessModel):
    """Send the oldest activations, convolve this step's input (``Kernel.apply``: float64 ``conv2d``, one
    batch entry per tile) and queue it ``delay`` steps behind, as Lava's ``Sparse`` / ``DelaySparse`` do."""

    weight: np.ndarray
    a_buf: np.ndarray
    num_message_bits: np.ndarray
    _kernel: Kernel | None = None

    def _make_kernel(self, weight: np.ndarray) -> Kernel:
        p = self.proc_params
        # each parameter holds as many ints as its Kernel field (what PlanConv was given)
        crop = None if p["crop"] is None else cast("tuple[int, int]", tuple(p["crop"]))
        return Kernel(np.asarray(weight, dtype=np.float64), cast("tuple[int, int]", tuple(p["stride"])),
                      cast("tuple[int, int, int, int]", tuple(p["pad"])),
                      cast("tuple[int, int, int]", tuple(p["in_shape"])),
                      cast("tuple[int, int, int]", tuple(p["out_shape"])), crop)

    def _convolve(self, s: np.ndarray) -> np.ndarray:
        """``s`` ``(tiles * n_in,)`` -> float64 ``(tiles * n_out,)``."""
        if self._kernel is None:
            raise RuntimeError("PlanConv's kernel is made on the first step, before any convolution")
        x = np.asarray(s, dtype=np.float64).reshape(self.proc_params["tiles"], -1)
        return self._kernel.apply_numpy(x).ravel()

    def _activation(self, s: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def run_spk(self) -> None:
        self.a_out.send(self.a_buf[:, 0].copy())
        s = self.s_in.recv()
        if self.num_message_bits.item() == 0:
            s = s.astype(bool)
        a = self._activation(s)
        if self.a_buf.shape[1] > 1:
            self.a_buf = np.roll(self.a_buf, -1, axis=1)
        self.a_buf[:, -1] = a


@implements(proc=PlanConv, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyPlanConvFloat(_PlanConvModel):
    """Float64 convolution, no quantization (``Sparse``'s float model: ``weight_exp`` is not applied)."""

    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    a_buf: np.ndarray = LavaPyType(np.ndarray, float)
    weight: np.ndarray = LavaPyType(np.ndarray, float)
    num_message_bits: np.ndarray = LavaPyType(np.ndarray, int, precision=5)

    def _activation(self, s: np.ndarray) -> np.ndarray:
        if self._kernel is None:
            self._kernel = self._make_kernel(self.weight)
        return self._convolve(s)


@implements(proc=PlanConv, protocol=LoihiProtocol)
@requires(CPU)
@tag("bit_accurate_loihi", "fixed_pt")
class PyPlanConvFixed(_PlanConvModel):
    """Lava's bit-accurate ``Sparse`` arithmetic on a kernel: on the first step the weights are clipped and
    truncated (sign mode of the whole kernel), then every step ``int32(conv) << weight_exp`` (int32 wrap) or
    ``>> -weight_exp`` (arithmetic, rounds down). The float64 sum is exact below ``2**53`` and wrapped to int32
    as the int32 dot product wraps."""

    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    a_buf: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    weight: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=8)
    num_message_bits: np.ndarray = LavaPyType(np.ndarray, int, precision=5)

    def _activation(self, s: np.ndarray) -> np.ndarray:
        if self._kernel is None:
            mode = self.proc_params.get("sign_mode") or determine_sign_mode(self.weight)
            w = clip_weights(self.weight, mode, num_bits=8)
            self.weight = truncate_weights(w, mode, int(self.proc_params["num_weight_bits"]))
            self._kernel = self._make_kernel(self.weight)
        a = np.rint(self._convolve(s)).astype(np.int64).astype(np.int32)  # exact integers, wrapped to int32
        exp = int(self.proc_params["weight_exp"])
        return np.left_shift(a, exp) if exp > 0 else np.right_shift(a, -exp)


# the model of each process per select_tag: what Loihi2SimCfg(select_tag=...) picks among these classes
MODELS: dict[str, dict[type[AbstractProcess], type[PyLoihiProcessModel]]] = {
    "floating_pt": {NirNeuron: PyNirNeuronFloat, Recorder: PyRecorderModel, DelaySparse: PyDelaySparseStaticFloat,
                    PlanConv: PyPlanConvFloat},
    "fixed_pt": {NirNeuron: PyNirNeuronFixed, Recorder: PyRecorderModel, DelaySparse: PyDelaySparseStaticFixed,
                 PlanConv: PyPlanConvFixed},
}
