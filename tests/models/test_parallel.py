"""Tensor and expert parallelism over torch.distributed (gloo, 2 ranks on the CPU): the shard each
rank reads, the widths it refuses, greedy tokens and logits equal to one process, and the real
``torchrun`` command line."""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace

import pytest
import torch

from tilec.models.deepseek_v32.checkpoint import Checkpoint, load_params
from tilec.models.deepseek_v32.config import CONFIG_TINY, ConfigError
from tilec.models.deepseek_v32.parallel import Parallel, check_parallel, pick_backend
from tilec.models.deepseek_v32.specs import kernel_specs
from tilec.models.deepseek_v32.testing import FIXTURE_TP_ARGS, free_port, greedy_ranks, write_hf_checkpoint

A = FIXTURE_TP_ARGS


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_hf_checkpoint(str(tmp_path_factory.mktemp("ckpt") / "tp"), A, seed=3)


def test_widths_that_do_not_split_are_refused():
    with pytest.raises(ConfigError, match="n_heads = 8 is not a multiple of the world size 3"):
        check_parallel(A, 3)
    with pytest.raises(ConfigError, match=r"wq_b.weight rows into parts of 96, which splits the 128x128 FP8"):
        check_parallel(replace(CONFIG_TINY, dtype="fp8"), 2)
    check_parallel(replace(CONFIG_TINY, dtype="bf16"), 2)      # bf16 weights have no scale blocks
    with pytest.raises(ConfigError, match="NCCL reduces only CUDA tensors"):
        pick_backend("nccl")
    with pytest.raises(ConfigError, match="one of auto, gloo, nccl"):
        pick_backend("mpi")


def test_each_rank_reads_its_shard(folder):
    full, _ = load_params(A, folder, warn=False)
    ranks = [load_params(A, Checkpoint(folder), warn=False, par=Parallel(r, 2))[0] for r in range(2)]
    lo, hi = "layers.0.attn.wq_b.weight", "layers.1.ffn.experts."
    assert ranks[0][lo].shape == (4 * 64, A.q_lora_rank) and ranks[0][lo].is_contiguous()
    for name, cat_dim in (("embed.weight", 0), ("head.weight", 0), ("layers.0.attn.wq_b.weight", 0),
                          ("layers.0.attn.wq_b.scale", 0), ("layers.1.attn.wkv_b.weight", 0),
                          ("layers.0.attn.wo.weight", 1), ("layers.0.attn.wo.scale", 1),
                          ("layers.0.ffn.w1.weight", 0), ("layers.0.ffn.w2.weight", 1), ("layers.0.ffn.w2.scale", 1)):
        joined = torch.cat([r[name] for r in ranks], cat_dim)
        assert torch.equal(joined.view(torch.uint8) if joined.dtype == torch.float8_e4m3fn else joined,
                           full[name].view(torch.uint8) if joined.dtype == torch.float8_e4m3fn else full[name]), name
    assert torch.equal(ranks[1]["layers.0.attn.wq_a.weight"].view(torch.uint8),
                       full["layers.0.attn.wq_a.weight"].view(torch.uint8))          # replicated
    half = A.n_routed_experts // 2
    assert {int(k.split(".")[4]) for k in ranks[1] if k.startswith(hi)} == set(range(half, 2 * half))
    assert not any(k.startswith("layers.1.ffn.shared_experts.") for k in ranks[1])    # rank 0's
    assert any(k.startswith("layers.1.ffn.shared_experts.") for k in ranks[0])


def test_two_ranks_give_the_tokens_of_one_process(folder):
    prompts = [[5, 17, 99, 3, 250, 42, 7, 300, 11], [8, 8, 120, 64, 2, 390, 77, 5, 19]]
    one = greedy_ranks(folder, 1, prompts, 6, {"max_seq_len": 64})
    two = greedy_ranks(folder, 2, prompts, 6, {"max_seq_len": 64})
    assert torch.equal(one["tokens"], two["tokens"])
    l1, l2 = one["logits"], two["logits"]
    assert torch.isfinite(l2).all()
    rel = ((l2 - l1).norm() / l1.norm()).item()
    assert rel < 1e-2, rel        # fp32 summation order only, carried through bf16 roundings
    # a rank asks only for kernels that a library built for 2 ranks holds (`tilec model build --tp 2`)
    assert set(two["kernels"]) <= {s.name for s in kernel_specs(A, "cpu", 2)}
    assert "moe_permute_k4_e8_bm16" in two["kernels"] and not any("moe_layer" in k for k in two["kernels"])


def test_torchrun_generate_prints_the_one_process_completion(folder):
    argv = ["-m", "tilec", "model", "generate", "--weights", folder, "--chat", "--prompt", "hello there",
            "--max-new-tokens", "8", "--temperature", "0", "--max-seq-len", "64"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, *argv], capture_output=True, text=True, env=env, timeout=600)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                          "--master-port", str(free_port()), *argv], capture_output=True, text=True, env=env,
                         timeout=600)
    assert two.returncode == 0, two.stderr[-3000:]
    text = [ln for ln in one.stdout.splitlines() if not ln.startswith("prefill:")]
    assert text and [ln for ln in two.stdout.splitlines() if not ln.startswith("prefill:")] == text
    assert two.stdout.count("prefill:") == 1        # rank 0 alone prints


def test_serve_refuses_several_processes(folder, monkeypatch, capsys):
    from tilec import cli
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert cli.main(["model", "serve", "--weights", folder]) == 2
    assert "model serve runs in one process" in capsys.readouterr().err


def test_build_refuses_a_world_size_that_does_not_split(tmp_path, capsys):
    from tilec import cli
    out = tmp_path / "lib"
    assert cli.main(["model", "build", "--config", "tiny", "--tp", "3", "-o", str(out)]) == 2
    assert "n_heads = 4 is not a multiple of the world size 3" in capsys.readouterr().err
    assert not out.exists()                      # nothing half-written
