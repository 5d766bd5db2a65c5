"""The multi-step LIF as a small C library (``native``): the CPU's fastest exact implementation.

``native_kernels.c`` holds the LIF's two loops, forward and backward, each one pass over memory with the loop over
T inside and the membrane of a block of neurons kept in L1 (the ``fused`` op makes about five passes forward and
eight backward, one PyTorch kernel each); the backward recomputes the membranes from the saved input currents, so
the forward stores nothing but its spikes. The same library has the 2x2 sum pooling the models use
(:class:`~neuromoco.train.models.layers.SumPool2d`), and the two as one op (:class:`NativeLIFSumPool`: a LIF
followed by that pooling never writes its full-size spikes).

It is compiled at first use with the system's C compiler (``$CC``, else ``cc``/``gcc``/``clang``) into the user's
cache (``$XDG_CACHE_HOME/neuromoco/kernels``, or ``$NEUROMOCO_KERNEL_CACHE``; keyed by the source, compiler and
flags), written atomically, and loaded with ``ctypes``: no PyTorch headers (a C++ extension takes a minute to
build, this well under a second), no build step at install. Flags: ``-O3 -ffp-contract=off -fno-trapping-math``
and no ``-ffast-math`` or ``-march`` (IEEE arithmetic operation by operation, so the spikes are bit-identical to
Norse's step; the library runs on any CPU of the architecture, with an AVX2 clone of each loop picked at load time
on x86-64), ``-fopenmp`` where the compiler has it (threads: ``torch.get_num_threads()``, in the libgomp torch has
already loaded). Where no compiler works, :func:`unavailable_reason` says why and ``auto`` keeps ``fused``.

Served: CPU tensors, float32/float64, Norse's SuperSpike surrogate (the project's default) or ``heaviside``;
:func:`~neuromoco.train.models.lif_kernels.lif_multistep` sends anything else to ``fused``.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import torch

from neuromoco.io import atomic_write
from neuromoco.train.models.lif_kernels.fused import LIFConstants

SOURCE = Path(__file__).with_name("native_kernels.c")
ABI = 4  # native_kernels_abi() of the library this module calls
FLAGS = ("-O3", "-ffp-contract=off", "-fno-trapping-math", "-fPIC", "-shared", "-std=c11")
METHODS = ("super", "heaviside")  # the surrogates the C backward computes (heaviside: no gradient)
DTYPES = {torch.float32: "f32", torch.float64: "f64"}


class NativeUnavailable(RuntimeError):
    """The C library could not be built or loaded here (the message says why)."""


def cache_dir() -> Path:
    """Where built libraries are kept: ``$NEUROMOCO_KERNEL_CACHE``, else ``$XDG_CACHE_HOME/neuromoco/kernels``."""
    if os.environ.get("NEUROMOCO_KERNEL_CACHE"):
        return Path(os.environ["NEUROMOCO_KERNEL_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "neuromoco" / "kernels"


def _compiler() -> str:
    for cc in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if cc and shutil.which(cc):
            return cc
    raise NativeUnavailable("no C compiler found (set CC, or install gcc); the LIF runs as 'fused'")


class _CompileError(Exception):
    """The compiler ran and failed (its last line of errors), or could not run."""


def _compile(cc: str, extra: tuple[str, ...], target: str) -> None:
    try:
        done = subprocess.run([cc, *FLAGS, *extra, str(SOURCE), "-o", target, "-lm"], capture_output=True,
                              text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise _CompileError(str(err)) from None
    if done.returncode != 0:
        raise _CompileError((done.stderr.strip().splitlines() or ["?"])[-1])


def _build(cc: str, out: Path) -> None:
    """Compile the source to ``out`` (atomically), with OpenMP where the compiler has it."""
    errors = []
    for extra in (("-fopenmp",), ("-Wno-unknown-pragmas",)):
        try:
            atomic_write(out, partial(_compile, cc, extra))
            return
        except _CompileError as err:
            errors.append(str(err))
        except OSError as err:
            raise NativeUnavailable(f"cannot write the kernel cache {out.parent} ({err}; set NEUROMOCO_KERNEL_CACHE)") \
                from None
    raise NativeUnavailable(f"{cc} could not build {SOURCE.name}: {errors[-1]}")


def _load() -> Any:
    """Build (where the cache lacks it) and load the library; NativeUnavailable where it cannot be."""
    cc = _compiler()
    try:
        version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired) as err:
        raise NativeUnavailable(f"{cc} --version failed: {err}") from None
    key = hashlib.sha1(b"\0".join([SOURCE.read_bytes(), version.encode(), " ".join(FLAGS).encode(),
                                   platform.machine().encode()])).hexdigest()[:16]
    path = cache_dir() / f"native_kernels-{key}.so"
    if not path.is_file():
        _build(cc, path)
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as err:
        raise NativeUnavailable(f"cannot load {path}: {err}") from None
    if lib.native_kernels_abi() != ABI:
        raise NativeUnavailable(f"{path} reports interface {lib.native_kernels_abi()}, this module needs {ABI}")
    i64, ptr, i32 = ctypes.c_int64, ctypes.c_void_p, ctypes.c_int
    for suffix, real in (("f32", ctypes.c_float), ("f64", ctypes.c_double)):
        fwd = getattr(lib, f"lif_forward_{suffix}")
        fwd.argtypes = [ptr, ptr, i64, i64, real, real, real, real, i32, i32]
        fwd.restype = None
        bwd = getattr(lib, f"lif_backward_{suffix}")
        bwd.argtypes = [ptr, ptr, ptr, i64, i64, real, real, real, real, i32, i32]
        bwd.restype = i32
        for name in (f"sum_pool2x2_{suffix}", f"sum_pool2x2_backward_{suffix}"):
            getattr(lib, name).argtypes = [ptr, ptr, i64, i64, i64, i32]
            getattr(lib, name).restype = None
        fused_pool = getattr(lib, f"lif_sum_pool_{suffix}")
        fused_pool.argtypes = [ptr, ptr, i64, i64, i64, i64, real, real, real, real, i32, i32]
        fused_pool.restype = i32
        fused_pool_bwd = getattr(lib, f"lif_sum_pool_backward_{suffix}")
        fused_pool_bwd.argtypes = [ptr, ptr, ptr, i64, i64, i64, i64, real, real, real, real, i32, i32]
        fused_pool_bwd.restype = i32
    return lib


@lru_cache(maxsize=1)
def _outcome() -> tuple[Any, str | None]:
    """The library, or why there is none: decided once per process (every LIF and pooling call asks, and a failed
    build is not retried: a compiler that failed once would otherwise run again on every forward)."""
    try:
        return _load(), None
    except NativeUnavailable as err:
        return None, str(err)


def library() -> Any:
    """The loaded library (built on first use); NativeUnavailable, with the reason, where it cannot be."""
    lib, why = _outcome()
    if lib is None:
        raise NativeUnavailable(why)
    return lib


def forget() -> None:
    """Forget the library or the reason it failed, so the next call tries again (after fixing ``CC``, ``PATH`` or
    the kernel cache in this process; the tests)."""
    _outcome.cache_clear()


def unavailable_reason() -> str | None:
    """None when the library is built and loaded (building it on the first call), else why not."""
    return _outcome()[1]


def available() -> bool:
    return unavailable_reason() is None


def serves(x: torch.Tensor, c: LIFConstants) -> bool:
    """Whether the C loops compute this call exactly (else ``fused`` does)."""
    return x.device.type == "cpu" and x.dtype in DTYPES and c.method in METHODS


def _check(failed: int, what: str) -> None:
    if failed:
        raise MemoryError(f"the native {what} could not allocate its per-thread buffers")


def _lif_args(x: torch.Tensor, c: LIFConstants) -> tuple[Any, ...]:
    """The neuron's arguments of every LIF loop in the library, after the tensors and shapes."""
    return c.a, c.v_leak, c.v_th, c.v_reset, int(c.v_leak != 0.0), torch.get_num_threads()


def native_forward(x: torch.Tensor, c: LIFConstants) -> torch.Tensor:
    """Spikes ``[T, ...]`` of input currents ``x [T, ...]`` (contiguous)."""
    spikes = torch.empty_like(x)
    steps = int(x.shape[0])
    if x.numel():
        getattr(library(), f"lif_forward_{DTYPES[x.dtype]}")(x.data_ptr(), spikes.data_ptr(), steps,
                                                             x.numel() // steps, *_lif_args(x, c))
    return spikes


def native_backward(x: torch.Tensor, grad: torch.Tensor, c: LIFConstants) -> torch.Tensor:
    """Gradient of the input currents ``x`` (contiguous) from the spikes' gradient, SuperSpike surrogate; the
    membranes are recomputed from ``x`` block by block (nothing of the forward is kept but its input)."""
    grad = grad.contiguous()
    gx = torch.empty_like(x)
    steps = int(x.shape[0])
    if x.numel():
        _check(getattr(library(), f"lif_backward_{DTYPES[x.dtype]}")(
            x.data_ptr(), grad.data_ptr(), gx.data_ptr(), steps, x.numel() // steps, *_lif_args(x, c)),
            "LIF backward")
    return gx


def native_pooled_forward(x: torch.Tensor, c: LIFConstants) -> torch.Tensor:
    """The LIF over ``x [T, P, H, W]`` (contiguous) then 2x2 stride-2 sum pooling: ``[T, P, H/2, W/2]``."""
    steps, planes, h, w = (int(v) for v in x.shape)
    out = torch.empty((steps, planes, h // 2, w // 2), dtype=x.dtype)
    if x.numel():
        _check(getattr(library(), f"lif_sum_pool_{DTYPES[x.dtype]}")(
            x.data_ptr(), out.data_ptr(), steps, planes, h, w, *_lif_args(x, c)), "LIF + sum pooling")
    return out


def native_pooled_backward(x: torch.Tensor, grad: torch.Tensor, c: LIFConstants) -> torch.Tensor:
    """Gradient of ``x`` from the pooled spikes' gradient (membranes and spikes recomputed from ``x``)."""
    grad = grad.contiguous()
    gx = torch.empty_like(x)
    steps, planes, h, w = (int(v) for v in x.shape)
    if x.numel():
        _check(getattr(library(), f"lif_sum_pool_backward_{DTYPES[x.dtype]}")(
            x.data_ptr(), grad.data_ptr(), gx.data_ptr(), steps, planes, h, w, *_lif_args(x, c)),
            "LIF + sum pooling backward")
    return gx


def native_sum_pool(x: torch.Tensor) -> torch.Tensor:
    """2x2 stride-2 sum pooling of the last two axes of ``x`` (float32/float64, any leading axes)."""
    x = x.contiguous()
    h, w = int(x.shape[-2]), int(x.shape[-1])
    y = torch.empty((*x.shape[:-2], h // 2, w // 2), dtype=x.dtype)
    if y.numel():
        getattr(library(), f"sum_pool2x2_{DTYPES[x.dtype]}")(x.data_ptr(), y.data_ptr(), x.numel() // (h * w), h, w,
                                                               torch.get_num_threads())
    return y


def native_sum_pool_backward(g: torch.Tensor, in_shape: torch.Size) -> torch.Tensor:
    """The input's gradient of :func:`native_sum_pool` (each window's gradient to its four inputs)."""
    g = g.contiguous()
    h, w = int(in_shape[-2]), int(in_shape[-1])
    gx = torch.empty(in_shape, dtype=g.dtype)
    if gx.numel():
        if not g.numel():
            return gx.zero_()
        getattr(library(), f"sum_pool2x2_backward_{DTYPES[g.dtype]}")(g.data_ptr(), gx.data_ptr(),
                                                                        gx.numel() // (h * w), h, w,
                                                                        torch.get_num_threads())
    return gx


def _forward(ctx: Any, x: torch.Tensor, c: LIFConstants, compute: Any) -> torch.Tensor:
    """The forward of an op that saves only its input (the backward recomputes the membranes from it)."""
    x = x.contiguous()
    if ctx.needs_input_grad[0] and c.method != "heaviside":
        ctx.save_for_backward(x)
    ctx.constants = c
    out: torch.Tensor = compute(x, c)
    return out


def _backward(ctx: Any, grad: torch.Tensor, gradient: Any) -> tuple[torch.Tensor | None, None]:
    """The backward of such an op: no gradient for ``heaviside`` (None: zeros), else ``gradient(x, grad, c)``."""
    c: LIFConstants = ctx.constants
    if not ctx.needs_input_grad[0] or c.method == "heaviside":
        return None, None
    (x,) = ctx.saved_tensors
    return gradient(x, grad, c), None


class NativeLIF(torch.autograd.Function):
    """``spikes = NativeLIF.apply(x, constants)``: the whole sequence in one autograd node, computed in C; saves only
    ``x``."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, c: LIFConstants) -> torch.Tensor:
        return _forward(ctx, x, c, native_forward)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None]:
        return _backward(ctx, grad, native_backward)


class NativeLIFSumPool(torch.autograd.Function):
    """``pooled = NativeLIFSumPool.apply(x, constants)``: the LIF over ``x [T, P, H, W]`` followed by 2x2 stride-2
    sum pooling, ``[T, P, H/2, W/2]``, in one pass; the values and gradients of :class:`NativeLIF` then the pooling
    (the spikes are 0/1, so every window's sum is exact in any order). Saves only ``x``."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, c: LIFConstants) -> torch.Tensor:
        return _forward(ctx, x, c, native_pooled_forward)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None]:
        return _backward(ctx, grad, native_pooled_backward)
