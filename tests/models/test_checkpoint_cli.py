"""`tilec model build/generate` on an HF-style checkpoint folder (the generated fixture), and
``load_pretrained``: chat, sampling options, build-time cache sizes, the MTP warning, greedy tokens
equal through the library and through in-process kernels, the compiled model against the reference."""
from __future__ import annotations

import json
import os

import pytest
import torch

from tilec import cli
from tilec.models.deepseek_v32.checkpoint import UnusedWeightsWarning, load_pretrained
from tilec.models.deepseek_v32.generate import generate
from tilec.models.deepseek_v32.testing import FIXTURE_ARGS, write_hf_checkpoint
from tilec.models.deepseek_v32.tokenizer import TextStream, chat_messages


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_hf_checkpoint(str(tmp_path_factory.mktemp("ckpt") / "fixture"), seed=2)


@pytest.fixture(scope="module")
def library(folder, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("lib") / "dsv32")
    assert cli.main(["model", "build", "--weights", folder, "--max-batch-size", "2", "--max-seq-len", "128",
                     "-o", out]) == 0
    return out


def tilec(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _greedy_text(pre, prompt: str, n: int) -> str:
    ids = pre.tokenizer.encode(pre.tokenizer.apply_chat_template(chat_messages(prompt), True), add_bos=False)
    out = generate(pre.model, [ids], n, pre.args.max_seq_len, list(pre.tokenizer.eos_token_ids))[0]
    stream = TextStream(pre.tokenizer)
    return "".join(stream.push(t)[0] for t in out) + stream.finish()


def test_load_pretrained_matches_reference(folder):
    with pytest.warns(UnusedWeightsWarning, match=r"MTP\) layer model.layers.2.\*"):
        pre = load_pretrained(folder, max_seq_len=128)
    assert pre.args == FIXTURE_ARGS.__class__(**{**FIXTURE_ARGS.__dict__, "max_seq_len": 128})
    assert pre.generation_config["top_p"] == 0.95 and pre.tokenizer.eos_token_ids == (1,)
    ref = pre.reference()
    rels = []
    for seed in range(3):      # prefill of 20 and one decode step, batch 2
        tokens = torch.randint(3, 400, (2, 20), generator=torch.Generator().manual_seed(seed))
        for start, t in ((0, tokens), (20, None)):
            if t is None:
                t = lr.argmax(-1, keepdim=True)
            lm, lr = pre.model(t, start), ref(t, start)
            assert torch.isfinite(lm).all()
            rels += ((lm - lr).norm(dim=-1) / lr.norm(dim=-1)).tolist()
    # the same kernels as the reference up to summation order (~1e-7), except where a near-tie flips an
    # indexer top-k or routing choice on random weights (docs/model.md, "How it is checked")
    assert max(rels) < 3e-2, rels
    assert sum(r < 1e-5 for r in rels) >= len(rels) - 2, rels


def test_build_from_folder_records_sizes(library, folder):
    man = json.load(open(os.path.join(library, "manifest.json")))
    assert (man["max_batch_size"], man["max_seq_len"]) == (2, 128)
    assert man["args"]["max_seq_len"] == 128 and man["args"]["dtype"] == "fp8" and man["args"]["n_layers"] == 2
    assert man["config"] == os.path.join(folder, "config.json")
    assert "topk_16_cap128" in man["kernels"] and "topk_16_cap256" not in man["kernels"]


def test_generate_chat_on_folder(capsys, folder, library):
    """The CLI on the folder: in-process kernels (no --model) and the library give the same greedy text,
    and it is the text of load_pretrained + generate."""
    args = ["model", "generate", "--weights", folder, "--chat", "--prompt", "Hello there", "--max-new-tokens", "6",
            "--temperature", "0"]
    code, out_jit, err = tilec(capsys, *args, "--check")
    assert code == 0, err
    assert "warning:" in err and "model.layers.2.*" in err and "speculative decoding" in err
    assert "check: largest logit error" in out_jit
    code, out_lib, err = tilec(capsys, *args, "--model", library)
    assert code == 0, err
    first = out_lib.splitlines()[0]
    assert out_jit.splitlines()[0] == first
    pre = load_pretrained(folder, library=library, warn=False)
    assert first == "Hello there" + _greedy_text(pre, "Hello there", 6)


def test_generate_sampling_and_limits(capsys, folder, library):
    base = ["model", "generate", "--weights", folder, "--model", library]
    code, out, err = tilec(capsys, *base, "--prompt", "Hello", "--prompt", "The quick", "--temperature", "0.8",
                           "--top-p", "0.9", "--top-k", "20", "--seed", "3", "--stop", "e", "--max-new-tokens", "5")
    assert code == 0, err
    lines = [ln for ln in out.splitlines() if " -> " in ln]
    assert len(lines) == 2 and all("e" not in ln.split(" -> ")[1] for ln in lines)
    again = tilec(capsys, *base, "--prompt", "Hello", "--prompt", "The quick", "--temperature", "0.8",
                  "--top-p", "0.9", "--top-k", "20", "--seed", "3", "--stop", "e", "--max-new-tokens", "5")[1]
    assert [ln for ln in again.splitlines() if " -> " in ln] == lines      # the seed repeats
    code, _, err = tilec(capsys, *base, "--prompt", "a", "--prompt", "b", "--prompt", "c")
    assert code == 2 and "3 prompts, more than max_batch_size=2" in err and "--max-batch-size" in err
    code, _, err = tilec(capsys, *base, "--prompt", "a", "--max-seq-len", "512")
    assert code == 2 and "max_seq_len=512 is over the library's 128" in err
    code, _, err = tilec(capsys, *base, "--prompt", "word " * 200)
    assert code == 2 and "max_seq_len=128" in err
    code, _, err = tilec(capsys, *base, "--prompt", "a", "--top-p", "1.5")
    assert code == 2 and "top_p must be in (0, 1]" in err
    code, _, err = tilec(capsys, *base, "--prompt", "a", "--system", "x")
    assert code == 2 and "--system needs --chat" in err
    code, _, err = tilec(capsys, "model", "generate", "--weights", folder, "--model", library, "--config", "tiny",
                         "--prompt", "a")
    assert code == 2 and "built for another configuration" in err


OTHER = dict(dim=384, inter_dim=768, moe_inter_dim=256, n_layers=2, n_dense_layers=1, n_heads=8, n_routed_experts=8,
             n_shared_experts=2, n_activated_experts=2, n_expert_groups=2, n_limited_groups=1, q_lora_rank=256,
             kv_lora_rank=256, qk_nope_head_dim=64, qk_rope_head_dim=32, v_head_dim=64, index_n_heads=2,
             index_topk=32, vocab_size=600, max_seq_len=128)


def test_other_dims_build_and_match_reference(tmp_path):
    """A config.json that is no built-in configuration (other widths and head counts, 8 experts in 2
    groups, 2 shared experts: the padded-layout MoE kernels) builds and runs against the reference."""
    from dataclasses import replace
    args = replace(FIXTURE_ARGS, **OTHER)
    folder = write_hf_checkpoint(str(tmp_path / "other"), args, seed=4)
    pre = load_pretrained(folder, warn=False)
    assert pre.args == args
    ref = pre.reference()
    rels = []
    for seed, n in ((0, 10), (1, 40)):
        tokens = torch.randint(3, 400, (2, n), generator=torch.Generator().manual_seed(seed))
        lm, lr = pre.model(tokens, 0), ref(tokens, 0)
        rels += ((lm - lr).norm(dim=-1) / lr.norm(dim=-1)).tolist()
        nxt = lr.argmax(-1, keepdim=True)
        lm, lr = pre.model(nxt, n), ref(nxt, n)
        rels += ((lm - lr).norm(dim=-1) / lr.norm(dim=-1)).tolist()
    assert max(rels) < 6e-2, rels      # see test_load_pretrained_matches_reference for the rare outliers
    assert sum(r < 1e-5 for r in rels) >= len(rels) - 2, rels


def test_build_limit_is_a_clear_error(capsys, tmp_path):
    from tilec.models.deepseek_v32.testing import args_to_hf
    cfg = args_to_hf(FIXTURE_ARGS)
    cfg["kv_lora_rank"] = 96
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    code, _, err = tilec(capsys, "model", "build", "--config", str(path), "-o", str(tmp_path / "lib"))
    assert code == 2 and "kv_lora_rank 96 must be a multiple of 128" in err
    assert not (tmp_path / "lib").exists()
