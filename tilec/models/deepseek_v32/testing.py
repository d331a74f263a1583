"""A DeepSeek-V3.2 checkpoint folder as Hugging Face ships one, at tiny dims, generated (never downloaded).

``write_hf_checkpoint(folder)`` writes, for ``FIXTURE_ARGS`` (or any ``ModelArgs``):

- ``config.json`` with the HF DeepSeek-V3.2 keys (``args_to_hf``; ``config.args_from_hf`` reads it back to
  the same ``ModelArgs``), ``quantization_config`` for FP8, ``num_nextn_predict_layers: 1``;
- the weights under HF's key names (``model.layers.L.self_attn.q_a_proj.weight``, ``...weight_scale_inv``,
  ``mlp.experts.E.gate_proj``, ``e_score_correction_bias``, ``lm_head.weight``, ...), FP8 e4m3 linear
  weights with fp32 128x128 ``weight_scale_inv``, norms, embedding, head and ``weights_proj`` in bf16 as in
  the released checkpoint, split over ``n_shards`` files ``model-0000i-of-0000n.safetensors`` with a
  ``model.safetensors.index.json``;
- the multi-token-prediction layer ``model.layers.{n_layers}.*`` (a full MoE decoder layer plus
  ``embed_tokens``, ``enorm``, ``hnorm``, ``eh_proj``, ``shared_head.norm``, ``shared_head.head``), which
  tilec does not use;
- ``tokenizer.json``: a byte-level BPE trained with ``tokenizers`` on ``CORPUS``, DeepSeek's special tokens
  first (BOS ``<｜begin▁of▁sentence｜>`` 0, EOS ``<｜end▁of▁sentence｜>`` 1), ``tokenizer_config.json`` with a
  DeepSeek-style chat template, ``generation_config.json``.

The tests, the benchmarks and colleagues' code import it; it needs ``tokenizers`` (``tilec[model]``).
"""
from __future__ import annotations

import json
import os
from dataclasses import replace
from typing import Any, Optional

import torch

from .config import CONFIG_TINY, ModelArgs

FIXTURE_ARGS = replace(CONFIG_TINY, dtype="fp8", n_layers=2, n_dense_layers=1, vocab_size=512, max_batch_size=8)
# the fixture at widths two ranks can split on whole 128x128 FP8 scale blocks (parallel.check_parallel):
# 4 heads per rank of 32 + 32 dims (wq_b: 256 rows, wo: 128 columns)
FIXTURE_TP_ARGS = replace(FIXTURE_ARGS, n_heads=8, qk_rope_head_dim=32)

BOS_TOKEN, EOS_TOKEN, PAD_TOKEN = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜▁pad▁｜>"
SPECIAL_TOKENS = [BOS_TOKEN, EOS_TOKEN, PAD_TOKEN, "<｜User｜>", "<｜Assistant｜>", "<think>", "</think>"]

CHAT_TEMPLATE = (
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] }}"
    "{% elif message['role'] == 'user' %}{{ '<｜User｜>' + message['content'] }}"
    "{% elif message['role'] == 'assistant' %}{{ '<｜Assistant｜></think>' + message['content'] + eos_token }}"
    "{% else %}{{ raise_exception('unknown role: ' + message['role']) }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<｜Assistant｜></think>' }}{% endif %}")

CORPUS = [
    "The quick brown fox jumps over the lazy dog. A tile is a block of a matrix that fits in fast memory.",
    "Hello, world! Hello there. How are you today? I am fine, thank you.",
    "DeepSeek-V3.2 uses multi-head latent attention, a lightning indexer and a mixture of experts.",
    "Kernels compile to LLVM for the CPU, to CUDA C++ for GPUs and to AscendC for NPUs.",
    "Caf\u00e9 cr\u00e8me, na\u00efve r\u00e9sum\u00e9, gr\u00fc\u00dfe aus K\u00f6ln.",
    "Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 1000. Symbols: + - * / = ( ) [ ] { } < > .",
] * 4


def deepseek_to_hf(name: str) -> str:
    """The Hugging Face key of a DeepSeek tensor name (the inverse of ``weights.hf_to_deepseek``)."""
    from .weights import _HF_COMPONENTS
    inverse = {v: k for k, v in _HF_COMPONENTS.items()}
    parts = name.split(".")
    if parts[-1] == "scale":
        parts[-1] = "weight_scale_inv"
    if parts[-1] == "bias" and len(parts) >= 2 and parts[-2] == "gate":
        parts[-1] = "e_score_correction_bias"
    if "indexer" not in parts and len(parts) >= 2 and (parts[-2] != "head" or len(parts) == 2):
        parts[-2] = inverse.get(parts[-2], parts[-2])    # (the MTP layer's shared_head.head keeps its name)
    parts = ["self_attn" if p == "attn" else "mlp" if p == "ffn" else p for p in parts]
    out = ".".join(parts)
    return out if out.startswith("lm_head.") else "model." + out


def args_to_hf(args: ModelArgs) -> dict:
    """A Hugging Face DeepSeek-V3.2 ``config.json`` for ``args`` (``max_position_embeddings`` = max_seq_len)."""
    a = args
    cfg: dict[str, Any] = {
        "architectures": ["DeepseekV32ForCausalLM"], "model_type": "deepseek_v32",
        "vocab_size": a.vocab_size, "hidden_size": a.dim, "intermediate_size": a.inter_dim,
        "moe_intermediate_size": a.moe_inter_dim, "num_hidden_layers": a.n_layers,
        "num_nextn_predict_layers": 1, "first_k_dense_replace": a.n_dense_layers, "moe_layer_freq": 1,
        "num_attention_heads": a.n_heads, "num_key_value_heads": a.n_heads,
        "n_routed_experts": a.n_routed_experts, "n_shared_experts": a.n_shared_experts,
        "num_experts_per_tok": a.n_activated_experts, "n_group": a.n_expert_groups, "topk_group": a.n_limited_groups,
        "topk_method": "noaux_tc", "scoring_func": a.score_func, "norm_topk_prob": True,
        "routed_scaling_factor": a.route_scale, "q_lora_rank": a.q_lora_rank, "kv_lora_rank": a.kv_lora_rank,
        "qk_nope_head_dim": a.qk_nope_head_dim, "qk_rope_head_dim": a.qk_rope_head_dim,
        "v_head_dim": a.v_head_dim, "index_n_heads": a.index_n_heads, "index_head_dim": a.index_head_dim,
        "index_topk": a.index_topk, "max_position_embeddings": a.max_seq_len, "rope_theta": a.rope_theta,
        "rope_scaling": {"type": "yarn", "factor": a.rope_factor, "beta_fast": a.beta_fast,
                         "beta_slow": a.beta_slow, "mscale": a.mscale, "mscale_all_dim": a.mscale,
                         "original_max_position_embeddings": a.original_seq_len},
        "rms_norm_eps": 1e-6, "hidden_act": "silu", "tie_word_embeddings": False, "attention_bias": False,
        "bos_token_id": 0, "eos_token_id": 1, "torch_dtype": "bfloat16",
    }
    if a.dtype == "fp8":
        cfg["quantization_config"] = {"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic",
                                      "weight_block_size": [128, 128], "scale_fmt": a.scale_fmt}
    return cfg


def _stored_dtype(name: str, t: torch.Tensor) -> torch.Tensor:
    """The dtype the released checkpoint stores: FP8 weights and fp32 scales / gate bias as they are,
    every other float tensor in bf16."""
    if t.dtype == torch.float8_e4m3fn or name.endswith(".scale") or name.endswith("gate.bias"):
        return t.contiguous()
    return t.to(torch.bfloat16).contiguous()


def random_tensors(args: ModelArgs, seed: int = 0, mtp: bool = True) -> dict[str, torch.Tensor]:
    """DeepSeek-named random weights of ``args`` (``init.init_random_weights``) in checkpoint dtypes,
    plus the MTP layer ``layers.{n_layers}.*`` when ``mtp``."""
    from .init import init_random_weights
    from .reference import Transformer
    big = replace(args, n_layers=args.n_layers + 1, max_batch_size=1) if mtp else replace(args, max_batch_size=1)
    model = init_random_weights(Transformer(big), seed)
    out = {k: _stored_dtype(k, v.detach()) for k, v in model.state_dict().items()}
    if mtp:
        n, gen = args.n_layers, torch.Generator().manual_seed(seed + 1)
        extra = {"embed.weight": (args.vocab_size, args.dim), "enorm.weight": (args.dim,),
                 "hnorm.weight": (args.dim,), "eh_proj.weight": (args.dim, 2 * args.dim),
                 "shared_head.norm.weight": (args.dim,), "shared_head.head.weight": (args.vocab_size, args.dim)}
        for k, shape in extra.items():
            out[f"layers.{n}.{k}"] = (torch.randn(shape, generator=gen) * 0.05).to(torch.bfloat16)
    return out


def write_tokenizer(folder: str, vocab_size: int = 400, corpus: Optional[list[str]] = None) -> None:
    """tokenizer.json (byte-level BPE trained on ``corpus``), tokenizer_config.json, generation_config.json."""
    try:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    except ImportError:
        from .tokenizer import MODEL_EXTRA, TokenizerError
        raise TokenizerError(f"the checkpoint fixture trains a tokenizer with 'tokenizers': {MODEL_EXTRA}") from None
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus or CORPUS, trainer)
    tok.save(os.path.join(folder, "tokenizer.json"))

    def added(content: str) -> dict:
        return {"__type": "AddedToken", "content": content, "lstrip": False, "normalized": True,
                "rstrip": False, "single_word": False}
    tc = {"add_bos_token": True, "add_eos_token": False, "bos_token": added(BOS_TOKEN), "eos_token": added(EOS_TOKEN),
          "pad_token": added(PAD_TOKEN), "clean_up_tokenization_spaces": False, "legacy": True,
          "model_max_length": 163840, "tokenizer_class": "LlamaTokenizerFast", "chat_template": CHAT_TEMPLATE}
    _write_json(os.path.join(folder, "tokenizer_config.json"), tc)
    _write_json(os.path.join(folder, "generation_config.json"),
                {"_from_model_config": True, "bos_token_id": 0, "eos_token_id": 1, "do_sample": True,
                 "temperature": 0.6, "top_p": 0.95})


def _write_json(path: str, data: Any) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, ensure_ascii=False)
        f.write("\n")


def write_hf_checkpoint(folder: str, args: ModelArgs = FIXTURE_ARGS, seed: int = 0, n_shards: int = 2,
                        mtp: bool = True, tokenizer: bool = True) -> str:
    """Write the HF-style checkpoint folder described in the module docstring; returns ``folder``."""
    from safetensors.torch import save_file
    os.makedirs(folder, exist_ok=True)
    tensors = {deepseek_to_hf(k): v for k, v in random_tensors(args, seed, mtp).items()}
    names = sorted(tensors)
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    shards: list[list[str]] = [[] for _ in range(n_shards)]
    acc = 0
    for k in names:        # contiguous runs of names, about equal bytes per shard
        shards[min(n_shards - 1, acc * n_shards // max(total, 1))].append(k)
        acc += tensors[k].numel() * tensors[k].element_size()
    weight_map = {}
    for i, keys in enumerate(shards):
        fname = f"model-{i + 1:05d}-of-{n_shards:05d}.safetensors"
        save_file({k: tensors[k] for k in keys}, os.path.join(folder, fname), metadata={"format": "pt"})
        weight_map.update({k: fname for k in keys})
    _write_json(os.path.join(folder, "model.safetensors.index.json"),
                {"metadata": {"total_size": total}, "weight_map": weight_map})
    _write_json(os.path.join(folder, "config.json"), args_to_hf(args))
    if tokenizer:
        write_tokenizer(folder, min(400, args.vocab_size))
    return folder


# --- several processes ---------------------------------------------------------------------------------

def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Recording:
    """A kernel provider that records the names of the kernels the model asks for."""

    def __init__(self, inner: Any):
        self.inner, self.names = inner, set()

    def get(self, spec: Any) -> Any:
        self.names.add(spec.name)
        return self.inner.get(spec)


def _greedy_rank(rank: int, world: int, port: int, folder: str, prompts: list[list[int]], steps: int,
                 sizes: dict, library: Optional[str], out: Any) -> None:
    import time

    import torch.distributed as dist

    from .checkpoint import load_pretrained
    from .parallel import SINGLE, Parallel, share_cpus
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    share_cpus(world)
    try:
        if world > 1:
            dist.init_process_group("gloo", rank=rank, world_size=world)
        par = Parallel(rank, world) if world > 1 else SINGLE
        pre = load_pretrained(folder, library=library, par=par, warn=False, **sizes)
        pre.model.kernels = _Recording(pre.model.kernels)
        tokens = torch.tensor(prompts, dtype=torch.long)
        logits = [pre.model(tokens, 0)]
        nxt, chosen, times = logits[0].argmax(-1), [], []
        for step in range(steps):
            chosen.append(nxt)
            t0 = time.perf_counter()
            logits.append(pre.model(nxt.view(-1, 1), tokens.size(1) + step))
            times.append(time.perf_counter() - t0)
            nxt = logits[-1].argmax(-1)
        chosen.append(nxt)
        if rank == 0:
            # numpy, not tensors: torch would pass tensors as shared memory the exiting rank takes away
            out.put({"logits": torch.stack(logits).numpy(), "tokens": torch.stack(chosen, 1).numpy(), "decode_s": times,
                     "kernels": sorted(pre.model.kernels.names)})
    except BaseException as e:                       # the parent reports it instead of waiting forever
        out.put({"error": f"rank {rank}: {type(e).__name__}: {e}"})
        raise
    finally:
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def greedy_ranks(folder: str, world: int, prompts: list[list[int]], steps: int, sizes: Optional[dict] = None,
                 library: Optional[str] = None, timeout: float = 600) -> dict:
    """Greedy prefill + ``steps`` decode steps of ``prompts`` (equal lengths) on ``world`` spawned ranks
    (gloo, each rank loading its shard of ``folder``). Rank 0's ``logits`` [steps + 1, B, vocab],
    ``tokens`` [B, steps + 1], per-step ``decode_s`` and the ``kernels`` the model asked for."""
    import torch.multiprocessing as mp
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=_greedy_rank, args=(r, world, port, folder, prompts, steps, sizes or {}, library,
                                                    out)) for r in range(world)]
    for p in procs:
        p.start()
    try:
        res = out.get(timeout=timeout)
    finally:
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
    if "error" in res:
        raise RuntimeError(res["error"])
    return {**res, "logits": torch.from_numpy(res["logits"]), "tokens": torch.from_numpy(res["tokens"])}
