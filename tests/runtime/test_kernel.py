"""tilec.compile / JITKernel: argument checks, dimension binding, out_idx, numpy and torch arrays."""
from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
import torch

import tilec
from tilec import TilecError, numerics
from tilec.ir import nodes as N
from tilec.runtime import auto_target

from .conftest import FakeTarget, elementwise_add


def _inputs(rng, rows=3, cols=4, dtype=np.float32):
    return [rng.standard_normal((rows, cols)).astype(dtype) for _ in range(2)]


def test_numpy_inputs_return_numpy_and_bind_dims(fake, rng):
    k = tilec.compile(elementwise_add(), out_idx=[2], target=fake)
    a, b = _inputs(rng, rows=5)
    c = k(a, b)
    assert isinstance(c, np.ndarray) and c.shape == (5, 4) and c.dtype == np.float32
    assert np.linalg.norm(c - (a + b)) / np.linalg.norm(a + b) < 1e-7
    args, dims = fake.last.calls[0]
    assert dims == {"M": 5}
    assert args[0] is a and args[1] is b  # numpy inputs pass through without a copy


def test_one_kernel_serves_every_size(fake, rng):
    k = tilec.compile(elementwise_add(), out_idx=[2], target=fake)
    for rows in (1, 7, 33):
        a, b = _inputs(rng, rows=rows)
        assert k(a, b).shape == (rows, 4)
    assert [d["M"] for _, d in fake.last.calls] == [1, 7, 33]
    assert len(fake.builds) == 1


def test_torch_inputs_return_torch_zero_copy(fake):
    k = tilec.compile(elementwise_add(), out_idx=[2], target=fake)
    a, b = torch.randn(3, 4), torch.randn(3, 4, requires_grad=True)
    c = k(a, b)
    assert isinstance(c, torch.Tensor) and c.dtype == torch.float32
    assert torch.allclose(c, a + b.detach())
    args, _ = fake.last.calls[0]
    assert np.shares_memory(args[0], a.numpy())
    assert np.shares_memory(args[2], c.numpy())  # the kernel wrote straight into the returned tensor


def test_bfloat16_torch_round_trip_is_bit_exact(fake):
    k = tilec.compile(elementwise_add("bfloat16"), out_idx=[2], target=fake)
    a = torch.randn(6, 4).to(torch.bfloat16)
    b = torch.randn(6, 4).to(torch.bfloat16)
    c = k(a, b)
    assert c.dtype == torch.bfloat16
    args, _ = fake.last.calls[0]
    assert args[0].dtype == np.uint16 and args[2].dtype == np.uint16
    want = (a.float() + b.float()).to(torch.bfloat16)
    assert torch.equal(c.view(torch.int16), want.view(torch.int16))


def test_float8_torch_inputs_are_viewed_as_uint8(fake):
    k = tilec.compile(elementwise_add("float8_e4m3"), out_idx=[2], target=fake)
    a = torch.randn(2, 4).to(torch.float8_e4m3fn)
    b = torch.randn(2, 4).to(torch.float8_e4m3fn)
    c = k(a, b)
    assert c.dtype == torch.float8_e4m3fn
    assert fake.last.calls[0][0][0].dtype == np.uint8
    want = (a.float() + b.float()).to(torch.float8_e4m3fn)
    assert torch.equal(c.view(torch.uint8), want.view(torch.uint8))


def test_bfloat16_numpy_inputs_are_bit_patterns(fake, rng):
    k = tilec.compile(elementwise_add("bfloat16"), out_idx=[2], target=fake)
    a32, b32 = _inputs(rng)
    a, b = numerics.from_float32(a32, "bfloat16"), numerics.from_float32(b32, "bfloat16")
    c = k(a, b)
    assert c.dtype == np.dtype(ml_dtypes.bfloat16)  # numpy bits in, ml_dtypes values out
    got = numerics.to_float32(c, "bfloat16")
    ref = numerics.to_float32(a, "bfloat16") + numerics.to_float32(b, "bfloat16")
    assert np.linalg.norm(got - ref) / np.linalg.norm(ref) < 1e-2


def test_float32_numpy_for_bfloat16_parameter_is_refused(fake, rng):
    k = tilec.compile(elementwise_add("bfloat16"), out_idx=[2], target=fake)
    a, b = _inputs(rng)
    with pytest.raises(TilecError, match=r"parameter 'A': expected dtype bfloat16, got float32.*from_float32"):
        k(a, b)


@pytest.mark.parametrize("make, pattern", [
    (lambda rng: [np.ones((3, 4), np.float32)],
     r"kernel 'add' takes 2 input\(s\) \(A, B\), got 1; C is allocated \(out_idx\)"),
    (lambda rng: [np.ones((3, 4), np.float32), np.ones((3, 4), np.float64)],
     r"parameter 'B': expected dtype float32, got float64"),
    (lambda rng: [np.ones((3, 4), np.float32), np.ones((3, 4, 1), np.float32)],
     r"parameter 'B': expected a 2-d array of shape \[M, 4\], got 3-d"),
    (lambda rng: [np.ones((3, 5), np.float32), np.ones((3, 5), np.float32)],
     r"parameter 'A': expected shape \[M, 4\], got \[3, 5\]: dimension 1 should be 4"),
    (lambda rng: [np.ones((3, 4), np.float32), np.ones((5, 4), np.float32)],
     r"parameter 'B': .*dimension 0 should be 3 \(M = 3, bound by parameter 'A' dimension 0\)"),
    (lambda rng: [[[1.0] * 4] * 3, np.ones((3, 4), np.float32)],
     r"parameter 'A': expected a numpy array or torch tensor of float32\[M, 4\], got list"),
    (lambda rng: [torch.ones(3, 4, device="meta"), torch.ones(3, 4)],
     r"parameter 'A': this target runs on the host and needs a CPU tensor"),
    (lambda rng: [torch.ones(3, 4), torch.ones(3, 4, dtype=torch.float16)],
     r"parameter 'B': expected dtype float32, got float16"),
])
def test_argument_errors_name_the_parameter(fake, rng, make, pattern):
    k = tilec.compile(elementwise_add(), out_idx=[2], target=fake)
    with pytest.raises(TilecError, match=pattern):
        k(*make(rng))
    assert not fake.last.calls  # nothing ran


def test_strict_refuses_a_transposed_input(fake):
    k = tilec.compile(elementwise_add(), out_idx=[2], target=fake, strict=True)
    with pytest.raises(TilecError, match=r"parameter 'A': expected a contiguous \(row-major\) array"):
        k(np.ones((4, 3), np.float32).T, np.ones((3, 4), np.float32))
    assert not fake.last.calls
    assert "strict" not in fake.builds[-1][1]   # a runtime option: not in the target's options


def test_out_idx_forms(fake, rng):
    a, b = _inputs(rng)
    for out_idx in (2, [2], [-1], (-1,)):
        k = tilec.compile(elementwise_add(), out_idx=out_idx, target=fake)
        assert k.out_idx == [2]
        np.testing.assert_allclose(k(a, b), a + b, rtol=1e-6)


def test_out_idx_none_writes_in_place(fake, rng):
    k = tilec.compile(elementwise_add(), target=fake)
    a, b = _inputs(rng)
    c = np.full_like(a, np.nan)
    assert k(a, b, c) is None
    np.testing.assert_allclose(c, a + b, rtol=1e-6)


def test_several_outputs_come_back_as_a_list(fake, rng):
    k = tilec.compile(elementwise_add(), out_idx=[1, 2], target=fake)
    a, _ = _inputs(rng, rows=2)
    outs = k(a)
    assert isinstance(outs, list) and [o.shape for o in outs] == [(2, 4), (2, 4)]


@pytest.mark.parametrize("out_idx, pattern", [
    (3, r"out_idx 3 is out of range: kernel 'add' has 3 parameters"),
    ([-4], r"out_idx -4 is out of range"),
    ([2, -1], r"out_idx names parameter 'C' twice"),
    (["C"], r"out_idx entries must be integers"),
])
def test_bad_out_idx(fake, out_idx, pattern):
    with pytest.raises(TilecError, match=pattern):
        tilec.compile(elementwise_add(), out_idx=out_idx, target=fake)


def test_output_with_a_symbol_no_input_binds(fake):
    func = elementwise_add()
    A, B, _ = func.params
    C2 = N.Buffer("C", (N.Var("R"), N.Const(4)), "float32", "global")
    odd = N.Func("odd", (A, B, C2), ())
    from tilec.runtime.kernel import JITKernel  # built directly: only the binding is under test
    k = JITKernel(odd, fake.build(odd, {}), fake, [2], {})
    with pytest.raises(TilecError, match=r"output parameter 'C': cannot size dimension 0: symbol R"):
        k(np.ones((2, 4), np.float32), np.ones((2, 4), np.float32))


def test_poisoned_outputs_start_as_nan(rng):
    class Lazy(FakeTarget):
        def build(self, func, options):
            exe = super().build(func, options)
            exe.run = lambda args, dims: None  # writes nothing
            return exe
    k = tilec.compile(elementwise_add("bfloat16"), out_idx=[2], target=Lazy(), poison_outputs=True)
    a = torch.randn(2, 4).to(torch.bfloat16)
    assert torch.isnan(k(a, a).float()).all()
    target = Lazy()
    k = tilec.compile(elementwise_add(), out_idx=[2], target=target, poison_outputs=True)
    assert "poison_outputs" not in target.builds[0][1]  # a runtime option, not the target's
    a32, _ = _inputs(rng)
    assert np.isnan(k(a32, a32)).all()


def test_pass_configs_reach_the_target(fake):
    cfg = {"tl.disable_tma_lower": True, "tl.disable_warp_specialized": True}
    k = tilec.compile(elementwise_add(), out_idx=[2], target=fake, pass_configs=cfg, verify_each=True)
    _, options = fake.builds[-1]
    assert options["pass_configs"] == cfg and options["verify_each"] is True
    assert k.get_kernel_source() == "// fake source for add"
    with pytest.raises(TilecError, match="pass_configs must be a dict"):
        tilec.compile(elementwise_add(), target=fake, pass_configs=["tl.disable_tma_lower"])


def test_unavailable_target_builds_but_does_not_run(rng):
    """A target that cannot run here (cuda without a GPU) still builds; the call says why it cannot run."""
    target = FakeTarget(ok=False)
    k = tilec.compile(elementwise_add(), out_idx=[2], target=target)
    assert target.builds and k.get_kernel_source() == "// fake source for add"
    a, _ = _inputs(rng)
    with pytest.raises(TilecError, match="built for target 'fake', which cannot run here: no fake hardware"):
        k(a, a)


def test_unknown_targets():
    with pytest.raises(TilecError, match=r"unknown target 'nosuch' \(known: interp"):
        tilec.compile(elementwise_add(), target="nosuch")


def test_auto_target_is_a_host_target_without_a_gpu():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert auto_target() in ("cpu", "interp")


def test_compile_rejects_what_is_not_a_kernel(fake):
    with pytest.raises(TilecError, match=r"expects a @T.prim_func kernel, got function \(a kernel factory\?"):
        tilec.compile(elementwise_add, target=fake)
    with pytest.raises(TilecError, match="expects a @T.prim_func kernel, got int"):
        tilec.compile(3, target=fake)


def test_compile_verifies_the_kernel(fake):
    func = elementwise_add()
    A, _, C = func.params
    bad_store = N.Store(C, (N.Var("i"),), N.Load(A, (N.Var("i"), N.Var("i"))))  # rank 1 index of rank 2
    bad = N.Func("bad", func.params, (N.Launch((N.Const(1),), (N.Var("bx"),), 1,
                                               (N.For(N.Var("i"), N.Const(0), N.Const(2), "serial",
                                                      (bad_store,)),)),))
    with pytest.raises(TilecError):
        tilec.compile(bad, target=fake)
    assert not fake.builds


def test_interp_target_runs_the_hand_built_kernel(rng):
    k = tilec.compile(elementwise_add(), out_idx=[2], target="interp")
    a, b = _inputs(rng, rows=3)
    c = k(a, b)
    assert np.linalg.norm(c - (a + b)) / np.linalg.norm(a + b) < 1e-7
    ct = k(torch.from_numpy(a), torch.from_numpy(b))
    assert isinstance(ct, torch.Tensor) and torch.allclose(ct, torch.from_numpy(a + b))


def test_gpu_targets_take_cuda_tensors_only():
    class GpuFake(FakeTarget):
        array_kind = "torch-cuda"
    k = tilec.compile(elementwise_add(), out_idx=[2], target=GpuFake())
    with pytest.raises(TilecError, match=r"parameter 'A': this target runs on the GPU and needs a CUDA "
                                         r"torch tensor, got a numpy array"):
        k(np.ones((2, 4), np.float32), np.ones((2, 4), np.float32))
    with pytest.raises(TilecError, match=r"parameter 'A': .*needs a CUDA tensor, got a tensor on 'cpu'"):
        k(torch.ones(2, 4), torch.ones(2, 4))
