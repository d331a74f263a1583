"""Checkpoint folders (HF-style fixture from ``testing.py``), configs, tokenizer, streaming text, sampling."""
from __future__ import annotations

import json
import os
import shutil
import sys
import warnings
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file, save_file

from tilec.models.deepseek_v32.checkpoint import (Checkpoint, CheckpointError, UnusedWeightsWarning,
                                                  expected_params, load_params)
from tilec.models.deepseek_v32.config import (CONFIG_671B, CONFIG_TINY, ConfigError, args_from_hf,
                                              check_buildable, load_config)
from tilec.models.deepseek_v32.generate import filter_probs, generate, sample
from tilec.models.deepseek_v32.testing import FIXTURE_ARGS, args_to_hf, deepseek_to_hf, write_hf_checkpoint
from tilec.models.deepseek_v32.tokenizer import (ByteTokenizer, TextStream, TokenizerError, chat_messages,
                                                 load_tokenizer)
from tilec.models.deepseek_v32.weights import WeightsError, hf_to_deepseek


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_hf_checkpoint(str(tmp_path_factory.mktemp("ckpt") / "dsv32-fixture"), seed=1)


def _copy(folder: str, tmp_path) -> str:
    dst = str(tmp_path / "copy")
    shutil.copytree(folder, dst)
    return dst


# --- the fixture and Checkpoint ---------------------------------------------------------------------

def test_fixture_is_an_hf_folder(folder):
    names = sorted(os.listdir(folder))
    assert names == ["config.json", "generation_config.json", "model-00001-of-00002.safetensors",
                     "model-00002-of-00002.safetensors", "model.safetensors.index.json", "tokenizer.json",
                     "tokenizer_config.json"]
    index = json.load(open(os.path.join(folder, "model.safetensors.index.json")))
    keys = set(index["weight_map"])
    assert set(index["weight_map"].values()) == {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}
    for k in ("model.embed_tokens.weight", "lm_head.weight", "model.layers.0.self_attn.q_a_proj.weight",
              "model.layers.0.self_attn.q_a_proj.weight_scale_inv", "model.layers.1.mlp.experts.3.gate_proj.weight",
              "model.layers.1.mlp.gate.e_score_correction_bias", "model.layers.0.self_attn.indexer.wq_b.weight",
              "model.layers.2.eh_proj.weight", "model.layers.2.shared_head.head.weight",
              "model.layers.2.embed_tokens.weight", "model.layers.2.mlp.experts.0.down_proj.weight_scale_inv"):
        assert k in keys, k
    shard = load_file(os.path.join(folder, index["weight_map"]["model.layers.0.self_attn.q_a_proj.weight"]))
    assert shard["model.layers.0.self_attn.q_a_proj.weight"].dtype == torch.float8_e4m3fn
    scale = load_file(os.path.join(folder, index["weight_map"]["model.layers.0.self_attn.q_a_proj.weight_scale_inv"]))
    assert scale["model.layers.0.self_attn.q_a_proj.weight_scale_inv"].shape == (1, 2)   # [128, 256] in 128x128


def test_name_mapping_round_trips(folder):
    for name in Checkpoint(folder).keys():      # the MTP layer's names too
        assert hf_to_deepseek(deepseek_to_hf(name)) == name, name
    assert deepseek_to_hf("layers.2.shared_head.head.weight") == "model.layers.2.shared_head.head.weight"
    assert deepseek_to_hf("head.weight") == "lm_head.weight"


@pytest.mark.parametrize("how", ["folder", "index", "files", "deepseek-names"])
def test_checkpoint_opens_every_form(folder, how, tmp_path):
    if how == "folder":
        ck = Checkpoint(folder)
    elif how == "index":
        ck = Checkpoint(os.path.join(folder, "model.safetensors.index.json"))
    elif how == "files":
        ck = Checkpoint(sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".safetensors")))
    else:   # DeepSeek-converted names in one file
        ref = Checkpoint(folder)
        path = str(tmp_path / "model0-mp1.safetensors")
        save_file({k: ref.get(k) for k in ref.keys()}, path)
        ck = Checkpoint(path)
    assert ck.naming == ("deepseek" if how == "deepseek-names" else "hf")
    want = set(expected_params(FIXTURE_ARGS))
    assert want <= set(ck.keys())
    assert {k for k in ck.keys() if k not in want} == {k for k in ck.keys() if k.startswith("layers.2.")}
    w, s = ck.get_weight("layers.1.ffn.experts.5.w2.weight")
    assert w.dtype == torch.float8_e4m3fn and s.dtype == torch.float32 and list(s.shape) == [2, 1]
    assert ck.shape("head.weight") == [512, 256] and ck.dtype("head.weight") == torch.bfloat16


def test_get_slice_and_fp8_weight_slices(folder):
    ck = Checkpoint(folder)
    full = ck.get("layers.0.attn.wq_b.weight")          # [4 * 48, 128] FP8
    for dim, start, stop in ((0, 3, 77), (1, 0, 128), (0, 128, 192), (-1, 5, 6)):
        part = ck.get_slice("layers.0.attn.wq_b.weight", dim, start, stop)
        assert torch.equal(part.view(torch.uint8), full.narrow(dim, start, stop - start).view(torch.uint8))
    w, s = ck.get_weight("layers.0.ffn.w1.weight", 0, 128, 384)      # [512, 256]: rows 128..384, scale rows 1..3
    whole_w, whole_s = ck.get_weight("layers.0.ffn.w1.weight")
    assert torch.equal(w.view(torch.uint8), whole_w[128:384].view(torch.uint8))
    assert torch.equal(s, whole_s[1:3])
    w, s = ck.get_weight("layers.0.attn.wkv_a.weight", 0, 128, None)   # 144 rows: the last, partial block
    assert w.shape == (16, 256) and s.shape == (1, 2)
    with pytest.raises(CheckpointError, match="sliced on 128-element scale blocks"):
        ck.get_weight("layers.0.ffn.w1.weight", 0, 64, 128)
    with pytest.raises(CheckpointError, match="outside"):
        ck.get_slice("norm.weight", 0, 0, 1000)
    with pytest.raises(CheckpointError, match="'layers.9.nope' is not in the checkpoint"):
        ck.get("layers.9.nope")


def test_load_params_warns_once_naming_mtp_and_unknown(folder, tmp_path):
    dst = _copy(folder, tmp_path)
    index_path = os.path.join(dst, "model.safetensors.index.json")
    index = json.load(open(index_path))
    save_file({"model.layers.0.self_attn.bogus": torch.zeros(3)}, os.path.join(dst, "extra.safetensors"))
    index["weight_map"]["model.layers.0.self_attn.bogus"] = "extra.safetensors"
    json.dump(index, open(index_path, "w"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        params, unused = load_params(FIXTURE_ARGS, dst)
    got = [w for w in caught if issubclass(w.category, UnusedWeightsWarning)]
    assert len(got) == 1
    msg = str(got[0].message)
    assert "multi-token-prediction (MTP) layer model.layers.2.*" in msg
    assert "'model.layers.0.self_attn.bogus'" in msg
    assert len(unused) == 1 + sum(k.startswith("layers.2.") for k in Checkpoint(folder).keys())
    assert params["head.weight"].dtype == torch.float32 and params["layers.0.attn_norm.weight"].dtype == torch.float32
    assert params["layers.0.attn.wq_a.weight"].dtype == torch.float8_e4m3fn


def _rewrite(dst: str, key: str, value) -> str:
    """Replace tensor ``key`` (HF name) in its shard; returns the shard's file name."""
    index = json.load(open(os.path.join(dst, "model.safetensors.index.json")))
    shard = os.path.join(dst, index["weight_map"][key])
    tensors = load_file(shard)
    if value is None:
        del tensors[key]
    else:
        tensors[key] = value
    save_file(tensors, shard)
    return os.path.basename(shard)


def test_mismatches_name_key_and_file(folder, tmp_path):
    dst = _copy(folder, tmp_path)
    shard = _rewrite(dst, "model.norm.weight", torch.zeros(7, dtype=torch.bfloat16))
    with pytest.raises(WeightsError, match=rf"{shard}: tensor 'model.norm.weight' has shape \[7\], the model "
                                           rf"expects \[256\]"):
        load_params(FIXTURE_ARGS, dst, warn=False)
    _rewrite(dst, "model.norm.weight", torch.ones(256, dtype=torch.bfloat16))
    key = "model.layers.1.mlp.experts.0.up_proj.weight"
    shard = _rewrite(dst, key, torch.zeros(128, 256, dtype=torch.bfloat16))
    with pytest.raises(WeightsError, match=rf"{shard}: tensor '{key}' is bfloat16, the model expects float8_e4m3fn"):
        load_params(FIXTURE_ARGS, dst, warn=False)
    _rewrite(dst, key, torch.zeros(128, 256, dtype=torch.float8_e4m3fn))
    shard = _rewrite(dst, "model.layers.1.mlp.gate.e_score_correction_bias", torch.zeros(16, dtype=torch.int32))
    with pytest.raises(WeightsError, match="e_score_correction_bias' is int32, the model expects float32"):
        load_params(FIXTURE_ARGS, dst, warn=False)


def test_broken_folders_are_named(folder, tmp_path):
    dst = _copy(folder, tmp_path)
    os.remove(os.path.join(dst, "model-00002-of-00002.safetensors"))
    with pytest.raises(CheckpointError, match="shard 'model-00002-of-00002.safetensors' is missing"):
        Checkpoint(dst)
    dst = str(tmp_path / "c2")
    shutil.copytree(folder, dst)
    _rewrite(dst, "lm_head.weight", None)
    with pytest.raises(CheckpointError, match="the index lists 'lm_head.weight' in this shard"):
        Checkpoint(dst)
    os.remove(os.path.join(dst, "model.safetensors.index.json"))      # without the index: every .safetensors
    with pytest.raises(WeightsError, match="missing tensor.*head.weight"):
        load_params(FIXTURE_ARGS, dst, warn=False)
    first = os.path.join(dst, "model-00001-of-00002.safetensors")
    shutil.copy(first, os.path.join(dst, "dup.safetensors"))
    with pytest.raises(CheckpointError, match="appears twice"):
        Checkpoint(dst)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no model.safetensors.index.json and no .safetensors"):
        Checkpoint(str(tmp_path / "empty"))
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        Checkpoint(str(tmp_path / "bad.json"))


# --- configurations -----------------------------------------------------------------------------------

V32_HF = {
    "vocab_size": 129280, "hidden_size": 7168, "intermediate_size": 18432, "moe_intermediate_size": 2048,
    "num_hidden_layers": 61, "num_nextn_predict_layers": 1, "first_k_dense_replace": 3, "moe_layer_freq": 1,
    "num_attention_heads": 128, "num_key_value_heads": 128, "n_routed_experts": 256, "n_shared_experts": 1,
    "num_experts_per_tok": 8, "n_group": 8, "topk_group": 4, "topk_method": "noaux_tc", "scoring_func": "sigmoid",
    "routed_scaling_factor": 2.5, "norm_topk_prob": True, "q_lora_rank": 1536, "kv_lora_rank": 512,
    "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128, "index_n_heads": 64,
    "index_head_dim": 128, "index_topk": 2048, "max_position_embeddings": 163840, "rope_theta": 10000,
    "rope_scaling": {"type": "yarn", "factor": 40, "beta_fast": 32, "beta_slow": 1, "mscale": 1.0,
                     "mscale_all_dim": 1.0, "original_max_position_embeddings": 4096},
    "quantization_config": {"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic",
                            "weight_block_size": [128, 128], "scale_fmt": "ue8m0"},
    "hidden_act": "silu", "tie_word_embeddings": False, "rms_norm_eps": 1e-6, "model_type": "deepseek_v32",
}


def test_hf_config_json_gives_the_671b_args():
    assert args_from_hf(V32_HF) == CONFIG_671B
    assert CONFIG_671B.softmax_scale == pytest.approx(0.1352338, rel=1e-6)
    assert args_from_hf(args_to_hf(FIXTURE_ARGS)) == FIXTURE_ARGS


def test_config_files_and_errors(folder, tmp_path):
    assert load_config(folder) == FIXTURE_ARGS
    assert load_config(os.path.join(folder, "config.json"), max_seq_len=128, max_batch_size=2) == \
        replace(FIXTURE_ARGS, max_seq_len=128, max_batch_size=2)
    deepseek = {k: getattr(CONFIG_671B, k) for k in (
        "vocab_size", "dim", "inter_dim", "moe_inter_dim", "n_layers", "n_dense_layers", "n_heads", "n_routed_experts",
        "n_shared_experts", "n_activated_experts", "n_expert_groups", "n_limited_groups", "route_scale", "score_func",
        "q_lora_rank", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim", "dtype", "scale_fmt",
        "index_n_heads", "index_head_dim", "index_topk")}          # DeepSeek's config_671B_v3.2.json
    path = tmp_path / "config_671B_v3.2.json"
    path.write_text(json.dumps(deepseek))
    assert load_config(str(path)) == CONFIG_671B
    path.write_text(json.dumps({**deepseek, "n_layer": 3}))
    with pytest.raises(ConfigError, match="unknown key 'n_layer'"):
        load_config(str(path))
    path.write_text(json.dumps({**deepseek, "dim": "7168"}))
    with pytest.raises(ConfigError, match="'dim' must be int"):
        load_config(str(path))
    bad = dict(V32_HF)
    del bad["index_topk"]
    with pytest.raises(ConfigError, match="no 'index_topk'.*DeepSeek-V3 without the lightning indexer"):
        args_from_hf(bad)
    with pytest.raises(ConfigError, match="'hidden_act': 'gelu' is not supported"):
        args_from_hf({**V32_HF, "hidden_act": "gelu"})
    with pytest.raises(ConfigError, match="neither a configuration name"):
        load_config(str(tmp_path / "nothing.json"))
    with pytest.raises(ConfigError, match="max_seq_len must be a positive integer"):
        load_config("tiny", max_seq_len=0)


def test_build_limits_are_named():
    check_buildable(FIXTURE_ARGS)
    check_buildable(CONFIG_671B)
    cases = [(dict(kv_lora_rank=96), "kv_lora_rank 96 must be a multiple of 128"),
             (dict(dtype="fp8", dim=192), "dim = 192 must be a multiple of 128 with FP8 weights"),
             (dict(index_head_dim=64), "index_head_dim 64 must be 128"),
             (dict(score_func="softmax"), "score_func 'softmax'"),
             (dict(n_routed_experts=18), "n_routed_experts 18 must be a multiple of n_expert_groups 4")]
    for change, msg in cases:
        with pytest.raises(ConfigError, match=msg):
            check_buildable(replace(CONFIG_TINY, **change))


# --- tokenizer ------------------------------------------------------------------------------------------

def test_tokenizer_from_folder(folder, tmp_path):
    tok = load_tokenizer(folder, FIXTURE_ARGS.vocab_size)
    assert (tok.bos_token_id, tok.eos_token_ids) == (0, (1,))
    ids = tok.encode("Hello, world!")
    assert ids[0] == 0 and tok.decode(ids[1:]) == "Hello, world!" and len(ids) < 10
    text = tok.apply_chat_template(chat_messages("Hi there", "Be brief."), add_generation_prompt=True)
    assert text == "<｜begin▁of▁sentence｜>Be brief.<｜User｜>Hi there<｜Assistant｜></think>"
    chat_ids = tok.encode(text, add_bos=False)
    assert chat_ids[0] == 0 and tok._tok.token_to_id("<｜User｜>") in chat_ids
    assert not tok.apply_chat_template(chat_messages("x"), add_generation_prompt=False).endswith("</think>")
    with pytest.raises(TokenizerError, match="chat template: unknown role: robot"):
        tok.apply_chat_template([{"role": "robot", "content": "x"}])
    # BOS/EOS come from the files: another EOS list in generation_config.json, another BOS token
    dst = _copy(folder, tmp_path)
    gc = json.load(open(os.path.join(dst, "generation_config.json")))
    tc = json.load(open(os.path.join(dst, "tokenizer_config.json")))
    del gc["bos_token_id"]
    json.dump({**gc, "eos_token_id": [3, 1]}, open(os.path.join(dst, "generation_config.json"), "w"))
    json.dump({**tc, "bos_token": "<｜▁pad▁｜>"}, open(os.path.join(dst, "tokenizer_config.json"), "w"))
    tok2 = load_tokenizer(dst, FIXTURE_ARGS.vocab_size)
    assert tok2.eos_token_ids == (3, 1) and tok2.eos_token_id == 3 and tok2.bos_token_id == 2
    assert tok2.encode("a")[0] == 2
    with pytest.raises(TokenizerError, match="more than the model's vocab_size 64"):
        load_tokenizer(folder, 64)


def test_missing_tokenizers_names_the_extra(folder, monkeypatch):
    monkeypatch.setitem(sys.modules, "tokenizers", None)
    with pytest.raises(TokenizerError, match=r"pip install tilec\[model\]"):
        load_tokenizer(folder, FIXTURE_ARGS.vocab_size)


@pytest.mark.parametrize("which", ["bpe", "bytes"])
def test_stream_decodes_utf8_split_over_tokens(folder, which):
    tok = load_tokenizer(folder, 512) if which == "bpe" else ByteTokenizer(1024)
    text = "Caf\u00e9 \U0001F642 \u4e2d\u6587 na\u00efve \U0001F680!"
    ids = tok.encode(text, add_bos=False)
    assert tok.decode(ids) == text
    assert any("\ufffd" in tok.decode([i]) for i in ids), "no character is split over tokens: the test is void"
    stream = TextStream(tok)
    chunks = []
    for i in ids:
        chunk, stopped = stream.push(i)
        assert not stopped and "\ufffd" not in chunk
        chunks.append(chunk)
    chunks.append(stream.finish())
    assert "".join(chunks) == text
    assert sum(1 for c in chunks if c) > 5       # streamed, not held to the end


def test_stream_stop_strings(folder):
    tok = load_tokenizer(folder, 512)
    ids = tok.encode("Hello there. How are you? STOP here", add_bos=False)
    stream = TextStream(tok, stop=["are you", "zz"])
    out, stopped_at = "", None
    for n, i in enumerate(ids):
        chunk, stopped = stream.push(i)
        out += chunk
        assert not out.endswith("are"), "a possible stop-string prefix was released"   # held back until decided
        if stopped:
            stopped_at = n
            break
    assert stopped_at is not None and out == "Hello there. How "
    assert stream.push(ids[-1]) == ("", True) and stream.finish() == ""
    stream = TextStream(tok, stop=["zz!"])       # no stop met: the held tail comes out when EOS ends the text
    text = "".join(stream.push(i)[0] for i in tok.encode("fizz", add_bos=False))
    assert not text.endswith("zz")
    tail, stopped = stream.push(tok.eos_token_id)
    assert stopped and text + tail == "fizz"
    assert TextStream(tok).push(tok.eos_token_id) == ("", True)


# --- sampling ------------------------------------------------------------------------------------------

def test_sampling_filters():
    probs = torch.tensor([[0.25, 0.5, 0.0625, 0.1875]])
    assert filter_probs(probs, top_k=2).tolist() == [[0.25, 0.5, 0.0, 0.0]]
    assert filter_probs(probs, top_p=0.75).tolist() == [[0.25, 0.5, 0.0, 0.0]]
    assert filter_probs(probs, top_p=0.76).tolist() == [[0.25, 0.5, 0.0, 0.1875]]
    assert filter_probs(probs, top_p=0.1).tolist() == [[0.0, 0.5, 0.0, 0.0]]
    assert filter_probs(probs, top_p=0.9, top_k=1).tolist() == [[0.0, 0.5, 0.0, 0.0]]
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 50, generator=g)
    top2 = logits.topk(2, dim=-1).indices
    for _ in range(200):
        s = sample(logits, 1.0, g, top_k=2)
        assert bool((s[:, None] == top2).any(-1).all())
    assert torch.equal(sample(logits, 5.0, g, top_k=1), logits.argmax(-1))
    assert torch.equal(sample(logits, 5.0, g, top_p=1e-6), logits.argmax(-1))
    # without filters the draw is the reference's: softmax(l / T) / Exponential(1) noise
    a, b = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    probs = torch.softmax(logits / 0.7, dim=-1)
    want = probs.div(torch.empty_like(probs).exponential_(1, generator=b)).argmax(-1)
    assert torch.equal(sample(logits, 0.7, a), want)
    with pytest.raises(ValueError, match="top_p must be in"):
        generate(lambda t, p: logits[:1], [[1]], 2, 16, 1, 1.0, top_p=0.0)


def test_generate_stops_rows_and_seeds_repeat():
    vocab = 32
    table = torch.randn(vocab, vocab, generator=torch.Generator().manual_seed(1))

    def forward(tokens, start_pos):
        return table[tokens[:, -1]]
    prompts = [[3, 4], [5]]
    greedy = generate(forward, prompts, 6, 64, -1)
    stops = generate(forward, prompts, 6, 64, -1, stop=lambda row, tok: row == 0 and tok == greedy[0][2])
    assert stops[0] == greedy[0][:3] and stops[1] == greedy[1]
    runs = [generate(forward, prompts, 6, 64, -1, 1.0, torch.Generator().manual_seed(5), top_p=0.9, top_k=8)
            for _ in range(2)]
    assert runs[0] == runs[1]
    multi_eos = generate(forward, prompts, 6, 64, [greedy[0][1], -1])
    assert multi_eos[0] == greedy[0][:1]
