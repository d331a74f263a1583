"""Safetensors weights with DeepSeek's names: round trip, strictness, Hugging Face names."""
import pytest
import torch
from safetensors.torch import load_file, save_file

from tilec.models.deepseek_v32.checkpoint import UnusedWeightsWarning
from tilec.models.deepseek_v32.config import get_config
from tilec.models.deepseek_v32.init import init_random_weights
from tilec.models.deepseek_v32.reference import Transformer
from tilec.models.deepseek_v32.checkpoint import load_weights
from tilec.models.deepseek_v32.weights import WeightsError, hf_to_deepseek, save_weights


@pytest.fixture(scope="module", params=["tiny", "tiny-fp8"])
def saved(request, tmp_path_factory):
    args = get_config(request.param)
    model = init_random_weights(Transformer(args), seed=3)
    path = str(tmp_path_factory.mktemp("w") / "tiny.safetensors")
    save_weights(model, path)
    return args, model, path


def test_round_trip_is_exact(saved):
    args, model, path = saved
    loaded = load_weights(Transformer(args), path)
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a.view(torch.uint8) if a.dtype == torch.float8_e4m3fn else a,
                           b.view(torch.uint8) if b.dtype == torch.float8_e4m3fn else b), k


def test_missing_tensor_is_named(saved, tmp_path):
    args, _, path = saved
    tensors = load_file(path)
    del tensors["layers.1.ffn.gate.bias"]
    bad = str(tmp_path / "bad.safetensors")
    save_file(tensors, bad)
    with pytest.raises(WeightsError, match=r"missing tensor\(s\) layers\.1\.ffn\.gate\.bias"):
        load_weights(Transformer(args), bad)


def test_extra_and_misshaped_tensors_are_named(saved, tmp_path):
    args, _, path = saved
    tensors = load_file(path)
    tensors["layers.0.attn.bogus.weight"] = torch.zeros(2)
    bad = str(tmp_path / "extra.safetensors")
    save_file(tensors, bad)
    with pytest.warns(UnusedWeightsWarning, match="unused weights, ignored: 1 tensor.*'layers.0.attn.bogus.weight'"):
        load_weights(Transformer(args), bad)
    tensors = load_file(path)
    tensors["norm.weight"] = torch.zeros(7)
    save_file(tensors, bad)
    with pytest.raises(WeightsError, match=r"extra.safetensors: tensor 'norm.weight' has shape \[7\], the model "
                                           r"expects \[256\]"):
        load_weights(Transformer(args), bad)


def test_not_a_safetensors_file(tmp_path):
    bad = tmp_path / "junk.safetensors"
    bad.write_bytes(b"\x80\x04not safetensors")
    with pytest.raises(WeightsError, match="not a readable safetensors file"):
        load_weights(Transformer(get_config("tiny")), str(bad))
    with pytest.raises(WeightsError, match="does not exist"):
        load_weights(Transformer(get_config("tiny")), str(tmp_path / "nope.safetensors"))


def test_hugging_face_names_map_to_deepseek_names():
    assert hf_to_deepseek("model.layers.2.self_attn.kv_a_proj_with_mqa.weight_scale_inv", 3) == \
        "layers.2.attn.wkv_a.scale"
    assert hf_to_deepseek("model.layers.1.mlp.experts.7.gate_proj.weight", 3) == "layers.1.ffn.experts.7.w1.weight"
    assert hf_to_deepseek("model.layers.1.mlp.gate.e_score_correction_bias", 3) == "layers.1.ffn.gate.bias"
    assert hf_to_deepseek("model.layers.0.self_attn.indexer.wq_b.weight", 3) == "layers.0.attn.indexer.wq_b.weight"
    assert hf_to_deepseek("model.embed_tokens.weight", 3) == "embed.weight"
    assert hf_to_deepseek("lm_head.weight", 3) == "head.weight"
    assert hf_to_deepseek("model.layers.3.mlp.down_proj.weight", 3) is None   # the MTP layer is dropped


def test_loads_hugging_face_named_file(saved, tmp_path):
    args, model, path = saved
    inverse = {"embed": "embed_tokens", "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
               "wq_a": "q_a_proj", "q_norm": "q_a_layernorm", "wkv_a": "kv_a_proj_with_mqa",
               "kv_norm": "kv_a_layernorm", "wkv_b": "kv_b_proj", "wo": "o_proj", "w1": "gate_proj",
               "w2": "down_proj", "w3": "up_proj", "head": "lm_head"}
    hf = {}
    for k, v in load_file(path).items():
        parts = k.split(".")
        if "indexer" not in parts:
            if parts[-2] == "wq_b":
                parts[-2] = "q_b_proj"
            parts[-2] = inverse.get(parts[-2], parts[-2])
        name = ".".join(parts).replace(".attn.", ".self_attn.").replace(".ffn.", ".mlp.")
        name = name.replace(".scale", ".weight_scale_inv").replace("gate.bias", "gate.e_score_correction_bias")
        hf[name if name.startswith("lm_head") else "model." + name] = v
    hf_path = str(tmp_path / "hf.safetensors")
    save_file(hf, hf_path)
    loaded = load_weights(Transformer(args), hf_path)
    assert torch.equal(loaded.layers[1].ffn.gate.bias, model.layers[1].ffn.gate.bias)
