"""The autotuner and the profiler (TileLang's API): picks, cache hits, cache invalidation, skipped configs."""
from __future__ import annotations

import pytest
import torch

import tilec
import tilec.language as T
from tilec.autotuner import AutoTuner

# Each test gets its own cache root (tuning results and compiled kernels), so hits are this test's own.


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TILEC_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("TILEC_AUTOTUNE_JOBS", "2")


def add_const(M, N, block_M=16, bug=False, dtype="float32"):
    """B = A + 1 in row tiles of ``block_M``; ``bug=True`` adds 2 (wrong numbers on purpose)."""
    c = 2.0 if bug else 1.0

    @T.prim_func
    def main(A: T.Tensor((M, N), dtype), B: T.Tensor((M, N), dtype)):
        with T.Kernel(T.ceildiv(M, block_M), threads=32) as bx:
            for i, j in T.Parallel(block_M, N):
                B[bx * block_M + i, j] = A[bx * block_M + i, j] + c

    return main


def ref_add(A):
    return A + 1


def test_profiler_do_bench_and_assert_allclose():
    kernel = tilec.compile(add_const(32, 16), out_idx=[1], target="cpu")
    prof = kernel.get_profiler(tensor_supply_type=tilec.TensorSupplyType.Normal)
    (a,) = prof.make_inputs()
    assert a.shape == (32, 16) and a.dtype == torch.float32 and a.std() > 0.5
    prof.assert_allclose(ref_add, rtol=1e-5, atol=1e-5)
    with pytest.raises(AssertionError, match="differ beyond"):
        prof.assert_allclose(lambda A: A + 1.5, rtol=1e-5, atol=1e-5)
    ms = prof.do_bench(n_warmup=2, n_repeat=5)
    ref_ms = prof.do_bench(ref_add, warmup=1, rep=2)
    assert ms > 0 and ref_ms > 0
    ones = kernel.get_profiler(tensor_supply_type="One").make_inputs()[0]
    assert bool((ones == 1).all())
    with pytest.raises(tilec.TilecError, match="tensor_supply_type"):
        kernel.get_profiler(tensor_supply_type="Gaussianish")


def test_profiler_symbolic_dims_named():
    M = T.symbolic("M")
    kernel = tilec.compile(add_const(M, 16), out_idx=[1], target="cpu")
    with pytest.raises(tilec.TilecError, match="dims="):
        kernel.get_profiler().make_inputs()
    (a,) = kernel.get_profiler(dims={"M": 48}).make_inputs()
    assert a.shape == (48, 16)


def test_autotune_picks_caches_and_invalidates():
    configs = [{"block_M": 8}, {"block_M": 16}, {"block_M": 32}]

    @tilec.autotune(configs=configs, warmup=1, rep=3)
    @tilec.jit(out_idx=[1], target="cpu")
    def tuned(M, N, block_M=16):
        return add_const(M, N, block_M)

    kernel = tuned(64, 16)
    first = tuned.last_result
    assert not first.cache_hit and first.config in configs
    assert all(t.latency is not None for t in first.trials), first.report()
    a = torch.randn(64, 16)
    assert torch.equal(kernel(a), a + 1)
    assert "winner" in first.report()

    # A fresh tuner (another process would be the same): the disk cache answers, nothing is timed.
    again = AutoTuner.from_kernel(tuned.fn, configs).set_kernel_parameters((64, 16)).run(warmup=1, rep=3)
    assert again.cache_hit and again.config == first.config and again.cache_path == first.cache_path

    # Another config space or another kernel body: a different key, tuned afresh.
    other = AutoTuner.from_kernel(tuned.fn, configs[:2]).set_kernel_parameters((64, 16)).run(warmup=1, rep=3)
    assert not other.cache_hit

    @tilec.jit(out_idx=[1], target="cpu")
    def changed(M, N, block_M=16):  # same signature, another body (A + 1 with bug=False -> same IR? no: + 2)
        return add_const(M, N, block_M, bug=True)
    changed.factory.__qualname__ = tuned.fn.factory.__qualname__  # same name: only the IR differs
    res = AutoTuner.from_kernel(changed, configs).set_kernel_parameters((64, 16)).set_profile_args(
        ref_prog=lambda A: A + 2).run(warmup=1, rep=3)
    assert not res.cache_hit and res.cache_path != first.cache_path


def test_failing_and_wrong_configs_are_skipped_with_reason():
    configs = [{"block_M": 16}, {"block_M": 16, "bug": True}, {"block_M": 16, "no_such_arg": 1}]
    res = (AutoTuner.from_kernel(add_const, configs).set_kernel_parameters((32, 16))
           .set_compile_args(out_idx=[1], target="cpu").run(warmup=1, rep=2))
    assert res.config == {"block_M": 16}
    ok, wrong, broken = res.trials
    assert ok.latency is not None and ok.skipped is None
    assert wrong.latency is None and wrong.skipped.startswith("wrong numbers") and "relative error" in wrong.skipped
    assert broken.skipped.startswith("compile failed: TypeError") and "no_such_arg" in broken.skipped
    assert "skipped {block_M=16, bug=True}: wrong numbers" in res.report()
    # Checked against a reference program instead of the interpreter: the same verdicts.
    res2 = (AutoTuner.from_kernel(add_const, configs[:2]).set_kernel_parameters((32, 16))
            .set_compile_args(out_idx=[1], target="cpu").set_profile_args(ref_prog=ref_add).run(warmup=1, rep=2))
    assert res2.config == {"block_M": 16} and res2.trials[1].skipped.startswith("wrong numbers")


def test_all_configs_failing_is_a_clear_error():
    with pytest.raises(tilec.TilecError, match="every config was skipped"):
        (AutoTuner.from_kernel(add_const, [{"nope": 1}, {"nope": 2}]).set_kernel_parameters((32, 16))
         .set_compile_args(out_idx=[1], target="cpu").run())
    with pytest.raises(tilec.TilecError, match="configs="):
        tilec.autotune(configs=None)


def test_ir_change_in_one_config_invalidates_the_cache():
    """The key hashes every config's IR: a change only the last config sees still retunes (and the now
    wrong config is skipped) instead of returning the stale winner."""
    configs = [{"block_M": 16}, {"block_M": 32}]
    state = {"bug": False}

    def factory(M, N, block_M=16):
        return add_const(M, N, block_M, bug=state["bug"] and block_M == 32)

    def tune():
        return (AutoTuner.from_kernel(factory, configs).set_kernel_parameters((64, 16))
                .set_compile_args(out_idx=[1], target="cpu").set_profile_args(ref_prog=ref_add).run(warmup=1, rep=2))

    first = tune()
    assert not first.cache_hit and tune().cache_hit
    state["bug"] = True
    changed = tune()
    assert not changed.cache_hit and changed.cache_path != first.cache_path
    assert changed.config == {"block_M": 16} and changed.trials[1].skipped.startswith("wrong numbers")
