"""The fused multi-step LIF and the Triton kernels (through Triton's interpreter) against their definition, Norse's
step in a loop: identical spikes, equal gradients.

Inputs sit on a dyadic grid so that, with dt/tau = 0.5, many membranes land exactly on the threshold (where the
strict ``v > v_th`` must not spike); each case checks that some did.
"""

from __future__ import annotations

import pytest
import torch
from norse.torch.functional.lif_box import LIFBoxParameters

from neuromoco.train.models.lif_kernels import fused_constants, lif_multistep, norse_loop, resolve_impl
from neuromoco.train.models.lif_kernels.fused import lif_forward
from neuromoco.train.models.neurons import LIF, LIFConfig, set_lif_impl

DT = 1e-3


def params(dtype: torch.dtype, v_leak: float = 0.0, v_reset: float = 0.0, method: str = "super",
           v_th: float = 1.0, alpha: float = 100.0, tau_mem: float = 2e-3) -> LIFBoxParameters:
    def t(v: float) -> torch.Tensor:
        return torch.as_tensor(v).to(dtype)  # as the LIF module builds them: float32, then the input's dtype

    return LIFBoxParameters(tau_mem_inv=t(1.0 / tau_mem), v_leak=t(v_leak), v_th=t(v_th), v_reset=t(v_reset),
                            method=method, alpha=t(alpha))


def grid_input(shape: tuple[int, ...], dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(-8, 40, shape, generator=g) / 16.0).to(dtype)  # -0.5 .. 2.44 in steps of 1/16


def compare(x: torch.Tensor, p: LIFBoxParameters, impl: str = "fused", rtol: float = 1e-5) -> None:
    """Spikes bit-identical and input gradients equal to ``rtol``, for ``x`` as given (any strides)."""
    x_ref = x.detach().clone().requires_grad_(True)
    x_new = x.detach().clone().requires_grad_(True)
    if not x.is_contiguous():  # keep the new path's input non-contiguous
        x_new = x.detach().clone().transpose(-1, -2).contiguous().transpose(-1, -2).requires_grad_(True)
        assert not x_new.is_contiguous()
    s_ref = norse_loop(x_ref, p, DT)
    s_new = lif_multistep(x_new, p, DT, impl)
    assert s_new.dtype == s_ref.dtype and torch.equal(s_new, s_ref)
    if p.method == "heaviside":
        return
    g = torch.randn(s_ref.shape, generator=torch.Generator().manual_seed(1)).to(x.dtype)
    (s_ref * g).sum().backward()
    (s_new * g).sum().backward()
    assert x_ref.grad is not None and x_new.grad is not None
    scale = x_ref.grad.abs().max().item()
    torch.testing.assert_close(x_new.grad, x_ref.grad, rtol=rtol, atol=rtol * scale)


def at_threshold(x: torch.Tensor, p: LIFBoxParameters) -> int:
    c = fused_constants(p, DT, x.dtype)
    assert c is not None
    return int((torch.stack(lif_forward(x.detach(), c)[1]) == c.v_th).sum())


CPU_IMPLS = ["fused", "native"]


@pytest.mark.parametrize("impl", CPU_IMPLS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("v_leak,v_reset", [(0.0, 0.0), (0.25, 0.0), (0.0, -0.5), (0.125, 0.375)])
def test_spikes_and_gradients_match_norse(impl: str, dtype: torch.dtype, v_leak: float, v_reset: float) -> None:
    p = params(dtype, v_leak=v_leak, v_reset=v_reset)
    x = grid_input((12, 3, 5, 7), dtype)
    assert at_threshold(x, p) > 0
    compare(x, p, impl)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_spikes_identical(dtype: torch.dtype) -> None:
    """AMP's dtypes: the same spikes; gradients to the dtype's resolution (rounding order differs)."""
    p = params(dtype, v_leak=0.125, v_reset=-0.25)
    x = grid_input((8, 3, 40), dtype)
    assert at_threshold(x, p) > 0
    compare(x, p, rtol=2e-2)


@pytest.mark.parametrize("impl", CPU_IMPLS)
@pytest.mark.parametrize("method", ["super", "triangle", "tanh", "circ", "heavi_erfc", "heaviside"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_every_surrogate(impl: str, method: str, dtype: torch.dtype) -> None:
    p = params(dtype, v_leak=0.0625, v_reset=-0.25, method=method, alpha=3.0)
    compare(grid_input((9, 4, 33), dtype, seed=2), p, impl)


@pytest.mark.parametrize("impl", CPU_IMPLS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_random_inputs_single_step_and_strides(impl: str, dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(3)
    p = params(dtype, v_leak=0.1, v_reset=-0.2, v_th=0.7, tau_mem=3e-3)
    compare((torch.randn(10, 4, 6, 5, generator=g) + 0.6).to(dtype), p, impl)  # leak, dt/tau = 1/3: inexact
    compare(grid_input((1, 8, 9), dtype), params(dtype), impl)  # T = 1
    base = grid_input((6, 5, 8, 8), dtype, seed=4)
    compare(base.transpose(-1, -2), params(dtype, v_reset=0.125), impl)  # non-contiguous
    compare(base[:, :, ::2], params(dtype), impl)  # strided
    compare(grid_input((5, 3, 1500), dtype, seed=6), params(dtype, v_leak=0.0625), impl)  # blocks and a remainder


def test_native_serves_the_default_and_builds_once(tmp_path, monkeypatch) -> None:
    """The C library is what CPU's auto runs for SuperSpike float32/float64 (not a silent fallback), built into the
    kernel cache once."""
    from neuromoco.train.models.lif_kernels import native

    monkeypatch.setenv("NEUROMOCO_KERNEL_CACHE", str(tmp_path))
    native.forget()
    try:
        assert resolve_impl("auto", "cpu") == "native"
        built = list(tmp_path.glob("native_kernels-*.so"))
        assert len(built) == 1
        stamp = built[0].stat().st_mtime_ns
        native.forget()
        native.library()
        assert built[0].stat().st_mtime_ns == stamp  # loaded from the cache, not built again
        x = grid_input((4, 2, 10), torch.float32).requires_grad_(True)
        c = fused_constants(params(torch.float32), DT, torch.float32)
        assert c is not None and native.serves(x, c)
        assert lif_multistep(x, params(torch.float32), DT, "native").grad_fn.name() == "NativeLIFBackward"
        assert not native.serves(x.double().half(), c)
    finally:
        native.forget()


def test_without_a_compiler_auto_is_fused_and_native_says_why(monkeypatch) -> None:
    from neuromoco.train.models.lif_kernels import native

    monkeypatch.setenv("CC", "no-such-cc")
    monkeypatch.setenv("PATH", "")
    native.forget()
    try:
        assert resolve_impl("auto", "cpu") == "fused"
        with pytest.raises(ValueError, match="no C compiler found"):
            resolve_impl("native", "cpu")
    finally:
        native.forget()
    with pytest.raises(ValueError, match="CPU only"):
        resolve_impl("native", "cuda")


def test_an_unwritable_kernel_cache_is_one_line_and_auto_stays_fused_without_retrying(tmp_path, monkeypatch) -> None:
    from neuromoco.train.models.lif_kernels import native

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("NEUROMOCO_KERNEL_CACHE", str(blocker / "kernels"))
    native.forget()
    try:
        assert resolve_impl("auto", "cpu") == "fused"

        def tried_again() -> None:
            raise AssertionError("the failed build ran again")

        monkeypatch.setattr(native, "_load", tried_again)  # every LIF forward asks: the failure is decided once
        assert [resolve_impl("auto", "cpu") for _ in range(3)] == ["fused"] * 3
        with pytest.raises(ValueError, match="cannot write the kernel cache"):
            resolve_impl("native", "cpu")
    finally:
        native.forget()


def test_a_parameter_that_requires_grad_falls_back_to_norse() -> None:
    p = params(torch.float32)._replace(v_th=torch.tensor(1.0, requires_grad=True))
    assert fused_constants(p, DT, torch.float32) is None
    x = grid_input((5, 3, 4), torch.float32)
    lif_multistep(x, p, DT, "fused").sum().backward()
    assert p.v_th.grad is not None


def test_module_impls_agree_and_set_lif_impl() -> None:
    net = torch.nn.Sequential(LIF(LIFConfig(v_reset=-0.25)), LIF(LIFConfig(v_threshold=0.5)))
    x = grid_input((8, 2, 16), torch.float32)
    out = {}
    for impl in ("norse", "fused", "native", "auto"):
        assert set_lif_impl(net, impl) == 2
        xi = x.clone().requires_grad_(True)
        s = net(xi * 2)
        s.sum().backward()
        out[impl] = (s, xi.grad)
    for impl in ("fused", "native", "auto"):
        assert torch.equal(out[impl][0], out["norse"][0])
        torch.testing.assert_close(out[impl][1], out["norse"][1], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="unknown LIF implementation"):
        set_lif_impl(net, "cuda-magic")
    assert resolve_impl("auto", "cpu") == "native"


def test_lif_impl_flag_reaches_the_model_the_log_and_config(tmp_path, capsys) -> None:
    import json

    from synthetic import synthetic_dataset

    from neuromoco.train.cli import main

    losses = {}
    with synthetic_dataset("synth-lif", n_train=16, n_test=8, size=8, num_classes=2):
        for impl in ("norse", "native"):
            out = tmp_path / impl
            assert main(["supervised", "--dataset", "synth-lif", "-T", "3", "--epochs", "1", "--batch-size", "8",
                         "--lif-impl", impl, "--out", str(out)]) == 0
            assert f"runtime: cpu, AMP off, LIF {impl}" in capsys.readouterr().err
            assert json.loads((out / "config.json").read_text())["runtime"]["lif_impl"] == impl
            losses[impl] = json.loads((out / "accuracy.json").read_text())["last"]
        assert main(["supervised", "--dataset", "synth-lif", "--lif-impl", "triton", "--out",
                     str(tmp_path / "t")]) == 2
        assert "triton runs on CUDA only" in capsys.readouterr().err
    assert losses["norse"]["top1"] == losses["native"]["top1"]


@pytest.fixture
def interpreted(monkeypatch):
    """Triton's CPU interpreter for the Triton kernels (set before their module is first imported)."""
    pytest.importorskip("triton")
    monkeypatch.setenv("TRITON_INTERPRET", "1")


@pytest.mark.parametrize("v_leak,v_reset", [(0.0, 0.0), (0.125, -0.25)])
def test_triton_matches_norse(interpreted, v_leak: float, v_reset: float) -> None:
    p = params(torch.float32, v_leak=v_leak, v_reset=v_reset)
    x = grid_input((7, 3, 40), torch.float32, seed=5)
    assert at_threshold(x, p) > 0
    compare(x, p, impl="triton")
    compare(x[:1], p, impl="triton")  # T = 1
    compare(grid_input((5, 6, 9), torch.float32).transpose(-1, -2), p, impl="triton")  # non-contiguous


def test_triton_leaves_other_dtypes_and_surrogates_to_fused(interpreted) -> None:
    compare(grid_input((5, 2, 30), torch.float64), params(torch.float64), impl="triton")
    compare(grid_input((5, 2, 30), torch.float32), params(torch.float32, method="tanh", alpha=2.0), impl="triton")


def test_triton_op_compiles_without_graph_breaks(interpreted) -> None:
    net = torch.nn.Sequential(torch.nn.Linear(8, 8), LIF(LIFConfig()), LIF(LIFConfig(v_threshold=0.5)))
    set_lif_impl(net, "triton")
    explained = torch._dynamo.explain(net)(torch.randn(4, 2, 8))
    assert explained.graph_break_count == 0, explained.break_reasons


def test_triton_needs_cuda_or_the_interpreter(monkeypatch) -> None:
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(ValueError, match="CUDA only"):
        resolve_impl("triton", "cpu")


def test_the_flag_offers_exactly_the_implementations() -> None:
    import argparse

    from neuromoco.train.engine.cliargs import add_runtime_args
    from neuromoco.train.models.lif_kernels import IMPLS

    parser = argparse.ArgumentParser()
    add_runtime_args(parser)
    action = next(a for a in parser._actions if a.dest == "lif_impl")
    assert tuple(action.choices or ()) == IMPLS and action.default == "auto"


@pytest.mark.parametrize("v_reset", [0.0, -0.25])
def test_compilable_custom_op_matches_the_fused_op(v_reset: float) -> None:
    """The torch.library form that torch.compile traces gives the fused op's spikes and gradients."""
    from neuromoco.train.models.lif_kernels.fused_op import lif_fused_compilable

    p = params(torch.float32, v_reset=v_reset)
    c = fused_constants(p, DT, torch.float32)
    assert c is not None
    x = grid_input((6, 3, 10), torch.float32)
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    sa, sb = lif_multistep(xa, p, DT, "fused"), lif_fused_compilable(xb, c)
    assert torch.equal(sa, sb)
    g = torch.randn(sa.shape, generator=torch.Generator().manual_seed(2))
    (sa * g).sum().backward()
    (sb * g).sum().backward()
    assert xa.grad is not None and xb.grad is not None and torch.equal(xa.grad, xb.grad)
    torch.library.opcheck(torch.ops.neuromoco.lif_fused_fwd.default, (x, c.a, c.v_leak, c.v_th, c.v_reset, c.alpha,
                                                                       c.method), test_utils=("test_schema",
                                                                                              "test_faketensor"))


@pytest.mark.parametrize("impl", CPU_IMPLS)
def test_cnn3_34_with_the_fused_op_traces_without_graph_breaks(impl: str) -> None:
    """torch.compile sees cnn3-34 (fused or native LIF, fast sum pooling) as one graph, LIF as custom ops."""
    from neuromoco.train.models.registry import build_classifier

    torch.manual_seed(0)
    model = build_classifier("cnn3-34", (2, 34, 34), 10)
    set_lif_impl(model, impl)
    explained = torch._dynamo.explain(model)(torch.rand(2, 2, 2, 34, 34))
    assert explained.graph_break_count == 0, explained.break_reasons
    assert explained.graph_count == 1
    code = "\n".join(g.code for g in explained.graphs)
    assert code.count("neuromoco.lif_fused_fwd") == 3  # one opaque op per LIF layer, not an unrolled loop


@pytest.mark.parametrize("path", ["module", "strided", "native"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(3, 4, 34, 34), (2, 3, 17, 17), (2, 3, 8, 9), (5, 7, 7)])
def test_fast_sum_pooling_is_avg_pool2d_bit_for_bit(path: str, dtype: torch.dtype, shape: tuple[int, ...]) -> None:
    """SumPool2d's 2x2 fast paths (strided adds; the native C loop, which the module runs on CPU) equal
    avg_pool2d(divisor_override=1) on random floats, forward and backward, also for a non-contiguous input."""
    from neuromoco.train.models.layers import SumPool2d, _NativeSumPool2x2, _SumPool2x2

    g = torch.Generator().manual_seed(3)
    x = (torch.randn(shape, generator=g, dtype=dtype) * 100)
    x = (x.transpose(-1, -2).contiguous().transpose(-1, -2) if path == "native" else x).requires_grad_(True)
    x_ref = x.detach().clone().requires_grad_(True)
    pool = {"module": SumPool2d(2), "strided": _SumPool2x2.apply, "native": _NativeSumPool2x2.apply}[path]
    out = pool(x)
    if path == "module":
        assert out.grad_fn is not None and out.grad_fn.name() == "_NativeSumPool2x2Backward"
    ref = torch.nn.functional.avg_pool2d(x_ref, 2, 2, 0, count_include_pad=True, divisor_override=1)
    assert torch.equal(out, ref)
    grad = torch.randn(ref.shape, generator=g, dtype=dtype)
    out.backward(grad)
    ref.backward(grad)
    assert x.grad is not None and x_ref.grad is not None and torch.equal(x.grad, x_ref.grad)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(6, 3, 4, 34, 34), (5, 2, 3, 9, 7), (4, 2, 2, 3, 2)])
@pytest.mark.parametrize("v_leak,v_reset", [(0.0, 0.0), (0.125, -0.25)])
def test_lif_then_sum_pooling_in_one_native_op(dtype: torch.dtype, shape: tuple[int, ...], v_leak: float,
                                               v_reset: float) -> None:
    """LIF.forward_pooled (one C op, no full-size spikes) gives pool(lif(x)) bit for bit and its gradient to
    rounding, odd sizes (a dropped row/column) and small planes (several per block) included."""
    from neuromoco.train.models.layers import SumPool2d

    lif, pool = LIF(LIFConfig(v_leak=v_leak, v_reset=v_reset)), SumPool2d(2)
    set_lif_impl(lif, "native")
    x = grid_input(shape, dtype, seed=7)
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    out = lif.forward_pooled(xa, pool)
    assert out is not None and out.grad_fn is not None
    assert out.grad_fn.next_functions[0][0].name() == "NativeLIFSumPoolBackward"  # under the reshape
    set_lif_impl(lif, "norse")
    ref = pool(lif(xb))
    assert torch.equal(out, ref)
    g = torch.randn(ref.shape, generator=torch.Generator().manual_seed(8)).to(dtype)
    out.backward(g)
    ref.backward(g)
    assert xa.grad is not None and xb.grad is not None
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-5, atol=1e-5 * xb.grad.abs().max().item())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_native_results_do_not_depend_on_the_thread_count(dtype: torch.dtype) -> None:
    """The C loops split blocks of 1,024 neurons among ``torch.get_num_threads()`` OpenMP threads (the suite runs
    one thread per worker): spikes, gradients and pooled outputs are bit-identical for 1, 2 and 3 threads on a
    shape with a block remainder."""
    from neuromoco.train.models.layers import SumPool2d

    lif, pool = LIF(LIFConfig(v_leak=0.125, v_reset=-0.25)), SumPool2d(2)
    set_lif_impl(lif, "native")
    x = grid_input((5, 3, 7, 18, 19), dtype, seed=11)  # 7,182 neurons: 7 blocks and a remainder
    g = torch.randn(x.shape, generator=torch.Generator().manual_seed(12)).to(dtype)
    results = []
    threads = torch.get_num_threads()
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
            spikes = lif(xa)
            pooled = lif.forward_pooled(xb, pool)
            assert pooled is not None
            (spikes * g).sum().backward()
            pooled.sum().backward()
            results.append((spikes, xa.grad, pooled, xb.grad))
    finally:
        torch.set_num_threads(threads)
    for other in results[1:]:
        for a, b in zip(results[0], other, strict=True):
            assert a is not None and b is not None and torch.equal(a, b)
    assert results[0][0].sum() > 0 and results[0][1].abs().sum() > 0


def test_lif_pooling_fusion_only_where_it_is_the_same_computation() -> None:
    from neuromoco.train.models.layers import SumPool2d

    lif, x = LIF(LIFConfig()), grid_input((3, 2, 2, 8, 8), torch.float32)
    set_lif_impl(lif, "native")
    assert lif.forward_pooled(x, SumPool2d(2)) is not None
    assert lif.forward_pooled(x, SumPool2d(3)) is None  # another window
    assert lif.forward_pooled(x, torch.nn.AvgPool2d(2)) is None  # another module
    assert lif.forward_pooled(x.reshape(3, 2, -1), SumPool2d(2)) is None  # not [T, B, C, H, W]
    handle = lif.register_forward_hook(lambda *_: None)  # someone watches the spikes: they must exist
    assert lif.forward_pooled(x, SumPool2d(2)) is None
    handle.remove()
    set_lif_impl(lif, "fused")
    assert lif.forward_pooled(x, SumPool2d(2)) is None


def test_cnn3_34_trains_the_same_with_every_cpu_implementation() -> None:
    """A whole model (LIF + pooling fused under native): the same logits bit for bit, gradients to rounding."""
    import copy

    from neuromoco.train.models.registry import build_classifier

    torch.manual_seed(0)
    model = build_classifier("cnn3-34", (2, 34, 34), 10)
    x = torch.poisson(torch.full((4, 3, 2, 34, 34), 0.3), generator=torch.Generator().manual_seed(1))
    runs = {}
    for impl in ("norse", "fused", "native"):
        m = copy.deepcopy(model)
        set_lif_impl(m, impl)
        out = m(x)
        out.sum().backward()
        runs[impl] = (out.detach(), [p.grad for p in m.parameters()])
    for impl in ("fused", "native"):
        assert torch.equal(runs[impl][0], runs["norse"][0])
        for a, b in zip(runs[impl][1], runs["norse"][1], strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6 * max(b.abs().max().item(), 1.0))
