"""Checkpoint folders as DeepSeek and Hugging Face ship them, read lazily, in DeepSeek's tensor names.

API (what ``serve`` and ``dist`` build on)::

    from tilec.models.deepseek_v32.checkpoint import Checkpoint, load_pretrained

    ck = Checkpoint("DeepSeek-V3.2-Exp/")      # a folder, its model.safetensors.index.json,
                                               # one .safetensors file or a list of them
    ck.keys()                                  # DeepSeek's converted names: "layers.0.attn.wq_a.weight", ...
    ck.shape(name), ck.dtype(name)             # from the safetensors header, no tensor data read
    ck.file_of(name), ck.raw_name(name)        # the shard and the key as stored (HF or DeepSeek naming)
    ck.get(name)                               # the whole tensor, as stored (FP8 stays float8_e4m3fn)
    ck.get_slice(name, dim, start, stop)       # rows/columns [start, stop) of dim; reads only those bytes
    ck.get_weight(name, dim=None, start=None, stop=None)
                                               # (weight, scale or None): an FP8 weight with its fp32 128x128
                                               # block scale (HF ``weight_scale_inv``, DeepSeek ``scale``),
                                               # both sliced consistently (start/stop on 128 boundaries)
    ck.config                                  # the folder's config.json as a dict (None without one)
    ck.model_args(max_batch_size=.., max_seq_len=..)   # ModelArgs from config.json (config.args_from_hf)

    p = load_pretrained("DeepSeek-V3.2-Exp/", library="build/dsv32", max_batch_size=4)
    p.model(tokens, start_pos)                 # logits (model.Model on the library's kernels, or on
                                               # kernels compiled in this process without ``library``)
    p.tokenizer, p.generation_config, p.args, p.checkpoint, p.unused

Names: a key that starts with ``model.`` or ``lm_head.`` is a Hugging Face name and is mapped with
DeepSeek's ``convert.py`` rules (``weights.hf_to_deepseek``); other keys are taken as DeepSeek's converted
names. The multi-token-prediction layer (HF ``model.layers.{n_layers}.*``) keeps its layer number:
``layers.{n_layers}.*``. Only the one-rank (``mp=1``) converted layout is read: a key found in two files
is an error. Files are opened with ``safetensors.safe_open`` (memory-mapped, never unpickled); a slice
reads only the bytes it covers.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Sequence

import torch

from .weights import WeightsError, hf_to_deepseek

INDEX_NAME = "model.safetensors.index.json"
BLOCK = 128     # FP8 weight scale blocks are BLOCK x BLOCK


class CheckpointError(WeightsError):
    """A checkpoint folder, index or file that cannot be read; the message names the path."""


def _torch_dtype(name: str) -> torch.dtype:
    table = {"F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2, "BF16": torch.bfloat16,
             "F16": torch.float16, "F32": torch.float32, "F64": torch.float64, "I64": torch.int64,
             "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool}
    if name not in table:
        raise CheckpointError(f"unsupported safetensors dtype {name}")
    return table[name]


def deepseek_name(raw: str) -> str:
    """The DeepSeek name of a stored key (HF names mapped, the MTP layer kept)."""
    if raw.startswith(("model.", "lm_head.")):
        mapped = hf_to_deepseek(raw, None)
        assert mapped is not None
        return mapped
    return raw


def scale_name(name: str) -> str:
    """The DeepSeek name of a weight's block scale: ``x.weight`` -> ``x.scale``."""
    return name[:-len("weight")] + "scale" if name.endswith(".weight") else name + ".scale"


def resolve_files(source: str | os.PathLike | Sequence[str | os.PathLike]) -> tuple[Optional[str], list[str],
                                                                                   Optional[dict]]:
    """(folder or None, safetensors files, index weight_map or None) for a folder, an index json, one
    safetensors file or a list of safetensors files."""
    if isinstance(source, (str, os.PathLike)):
        items = [os.fspath(source)]
    else:
        items = [os.fspath(s) for s in source]
    if not items:
        raise CheckpointError("no weights given")
    if len(items) == 1 and os.path.isdir(items[0]):
        folder = items[0]
        index = os.path.join(folder, INDEX_NAME)
        if os.path.isfile(index):
            return (folder, *_read_index(index))
        files = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".safetensors"))
        if not files:
            raise CheckpointError(f"{folder}: no {INDEX_NAME} and no .safetensors files")
        return folder, files, None
    if len(items) == 1 and items[0].endswith(".json"):
        index = items[0]
        if not os.path.isfile(index):
            raise CheckpointError(f"index '{index}' does not exist")
        return (os.path.dirname(os.path.abspath(index)), *_read_index(index))
    for p in items:
        if os.path.isdir(p):
            raise CheckpointError(f"'{p}' is a folder: give one folder, or safetensors files")
        if not os.path.isfile(p):
            raise CheckpointError(f"weights file '{p}' does not exist")
    folders = {os.path.dirname(os.path.abspath(p)) for p in items}
    return (folders.pop() if len(folders) == 1 else None), items, None


def _read_index(index: str) -> tuple[list[str], dict]:
    try:
        with open(index) as f:
            data = json.load(f)
    except ValueError as e:
        raise CheckpointError(f"{index}: not valid JSON: {e}") from None
    wmap = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(wmap, dict) or not all(isinstance(v, str) for v in wmap.values()):
        raise CheckpointError(f"{index}: no 'weight_map' of tensor name -> file name")
    folder = os.path.dirname(os.path.abspath(index))
    files = []
    for shard in sorted(set(wmap.values())):
        path = os.path.join(folder, shard)
        if os.path.basename(shard) != shard or not os.path.isfile(path):
            raise CheckpointError(f"{index}: shard '{shard}' is missing")
        files.append(path)
    return files, {k: os.path.join(folder, v) for k, v in wmap.items()}


class Checkpoint:
    """Lazy, read-only view of a checkpoint's tensors under DeepSeek's names (module docstring)."""

    def __init__(self, source: str | os.PathLike | Sequence[str | os.PathLike]):
        from safetensors import safe_open
        self._safe_open = safe_open
        self.folder, self.files, wmap = resolve_files(source)
        single = isinstance(source, (str, os.PathLike)) and (os.path.isdir(source)
                                                             or os.fspath(source).endswith(".json"))
        self.source = os.fspath(source) if single else ", ".join(self.files)   # how messages name it
        self._handles: dict[str, Any] = {}
        self._where: dict[str, tuple[str, str]] = {}      # DeepSeek name -> (file, stored key)
        if wmap is not None:
            stored: dict[str, list[str]] = {f: [] for f in self.files}
            for k, v in wmap.items():
                stored[v].append(k)
            for f in self.files:          # the index must tell the truth about its shards
                have = set(self._handle(f).keys())
                lost = [k for k in stored[f] if k not in have]
                if lost:
                    raise CheckpointError(f"{f}: the index lists '{lost[0]}' in this shard, which does not hold it")
        else:
            stored = {f: list(self._handle(f).keys()) for f in self.files}
        for f in self.files:
            for raw in stored[f]:
                name = deepseek_name(raw)
                if name in self._where:
                    other = self._where[name]
                    raise CheckpointError(f"tensor '{name}' appears twice: '{other[1]}' in {other[0]} and "
                                          f"'{raw}' in {f} (only one-rank, mp=1, checkpoints are read)")
                self._where[name] = (f, raw)
        self.naming = "hf" if any(r.startswith(("model.", "lm_head.")) for _, r in self._where.values()) \
            else "deepseek"
        self._config: Any = False

    # --- files ---------------------------------------------------------------------------------------
    def _handle(self, path: str) -> Any:
        h = self._handles.get(path)
        if h is None:
            try:
                h = self._safe_open(path, framework="pt")
            except Exception as exc:    # safetensors raises several types for a bad header
                raise CheckpointError(f"'{path}' is not a readable safetensors file: {exc}") from None
            self._handles[path] = h
        return h

    def close(self) -> None:
        self._handles.clear()

    def __enter__(self) -> "Checkpoint":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Checkpoint({self.source}, {len(self._where)} tensors, {self.naming} names)"

    # --- names and metadata ----------------------------------------------------------------------------
    def keys(self) -> list[str]:
        return list(self._where)

    def __contains__(self, name: str) -> bool:
        return name in self._where

    def __len__(self) -> int:
        return len(self._where)

    def _loc(self, name: str) -> tuple[str, str]:
        loc = self._where.get(name)
        if loc is None:
            raise CheckpointError(f"tensor '{name}' is not in the checkpoint {self.source}")
        return loc

    def file_of(self, name: str) -> str:
        return self._loc(name)[0]

    def raw_name(self, name: str) -> str:
        return self._loc(name)[1]

    def shape(self, name: str) -> list[int]:
        f, raw = self._loc(name)
        return list(self._handle(f).get_slice(raw).get_shape())

    def dtype(self, name: str) -> torch.dtype:
        f, raw = self._loc(name)
        return _torch_dtype(self._handle(f).get_slice(raw).get_dtype())

    def has_scale(self, name: str) -> bool:
        return scale_name(name) in self._where

    # --- data ----------------------------------------------------------------------------------------
    def get(self, name: str) -> torch.Tensor:
        f, raw = self._loc(name)
        return self._handle(f).get_tensor(raw)

    def get_slice(self, name: str, dim: int, start: int, stop: int) -> torch.Tensor:
        """``tensor.narrow(dim, start, stop - start)``, reading only those bytes from the file."""
        f, raw = self._loc(name)
        sl = self._handle(f).get_slice(raw)
        shape = sl.get_shape()
        d = dim + len(shape) if dim < 0 else dim
        if not 0 <= d < len(shape):
            raise CheckpointError(f"tensor '{name}' has {len(shape)} dims, no dim {dim}")
        if not 0 <= start <= stop <= shape[d]:
            raise CheckpointError(f"tensor '{name}': slice [{start}, {stop}) of dim {d} is outside 0..{shape[d]}")
        index = tuple([slice(None)] * d + [slice(start, stop)])
        return sl[index]

    def get_weight(self, name: str, dim: Optional[int] = None, start: Optional[int] = None,
                   stop: Optional[int] = None) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """(weight, its block scale or None), whole or sliced along ``dim``. An FP8 weight's slice must
        start on a 128 boundary and end on one or at the end, so that it keeps whole scale blocks."""
        has = self.has_scale(name)
        if dim is None:
            return self.get(name), (self.get(scale_name(name)) if has else None)
        shape = self.shape(name)
        start = 0 if start is None else start
        stop = shape[dim] if stop is None else stop
        w = self.get_slice(name, dim, start, stop)
        if not has:
            return w, None
        if start % BLOCK or (stop % BLOCK and stop != shape[dim]):
            raise CheckpointError(f"tensor '{name}': an FP8 weight is sliced on {BLOCK}-element scale blocks, "
                                  f"not [{start}, {stop})")
        return w, self.get_slice(scale_name(name), dim, start // BLOCK, -(-stop // BLOCK))

    # --- configuration -----------------------------------------------------------------------------
    @property
    def config(self) -> Optional[dict]:
        """The folder's config.json (None when there is none)."""
        if self._config is False:
            self._config = None
            path = os.path.join(self.folder, "config.json") if self.folder else None
            if path and os.path.isfile(path):
                from .config import read_json
                self._config = read_json(path)
        return self._config

    def model_args(self, **overrides: Any):
        from .config import load_config
        if not self.folder or not os.path.isfile(os.path.join(self.folder, "config.json")):
            raise CheckpointError(f"{self.source}: no config.json next to the weights")
        return load_config(os.path.join(self.folder, "config.json"), **overrides)

    def mtp_layers(self, n_layers: int) -> list[int]:
        """Layer numbers at or above ``n_layers`` (the MTP layers a model of n_layers does not use)."""
        found = set()
        for name in self._where:
            m = re.match(r"layers\.(\d+)\.", name)
            if m and int(m.group(1)) >= n_layers:
                found.add(int(m.group(1)))
        return sorted(found)


# --- loading a model's parameters ----------------------------------------------------------------------

_FLOATS = (torch.float32, torch.bfloat16, torch.float16)


def expected_params(args: Any) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """Every parameter a model of ``args`` needs: name -> (shape, dtype), computed without allocating."""
    from .reference import Transformer
    with torch.device("meta"):
        model = Transformer(args)
    return {k: (tuple(v.shape), v.dtype) for k, v in model.named_parameters()}


def unused_message(ck: Checkpoint, unused: Iterable[str], n_layers: int) -> str:
    """One warning's text for tensors present in the checkpoint but unused by the model."""
    unused = sorted(unused)
    mtp = ck.mtp_layers(n_layers)
    parts = []
    for layer in mtp:
        keys = [k for k in unused if k.startswith(f"layers.{layer}.")]
        shown = f"model.layers.{layer}.*" if ck.naming == "hf" else f"layers.{layer}.*"
        parts.append(f"the multi-token-prediction (MTP) layer {shown} ({len(keys)} tensors; tilec does not run "
                     f"speculative decoding with it)")
    other = [k for k in unused if not any(k.startswith(f"layers.{layer}.") for layer in mtp)]
    if other:
        shown = ", ".join(f"'{ck.raw_name(k)}'" for k in other[:5])
        more = f" and {len(other) - 5} more" if len(other) > 5 else ""
        parts.append(f"{len(other)} tensor(s) no parameter of this model takes: {shown}{more}")
    return f"{ck.source}: unused weights, ignored: " + "; ".join(parts)


class UnusedWeightsWarning(UserWarning):
    """Weights present in a checkpoint that the model does not use (the MTP layer, unknown tensors)."""


def load_params(args: Any, source: Any, warn: bool = True,
                par: Any = None) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Read every parameter of a model of ``args`` from ``source`` (a ``Checkpoint`` or what it opens).

    Returns (params by DeepSeek name in the model's dtypes, unused checkpoint names). A missing tensor,
    a shape that differs, or an FP8/non-FP8 or non-float mismatch is a ``WeightsError`` naming the key and
    its file; float tensors are cast to the parameter's dtype (the checkpoint's bf16 ``head`` and
    ``weights_proj`` become fp32). Unused tensors give one ``UnusedWeightsWarning`` (``warn``).
    ``par`` (``parallel.Parallel``): only this rank's shard of each parameter (``parallel.shard_of``:
    slices of the split weights, this rank's experts), read straight from the files."""
    import warnings
    ck = source if isinstance(source, Checkpoint) else Checkpoint(source)
    want = expected_params(args)
    missing = [k for k in want if k not in ck]
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise WeightsError(f"{ck.source}: missing tensor(s) {', '.join(missing[:5])}{more}")
    from .parallel import SINGLE, shard_of
    par = par or SINGLE
    params = {}
    for name, (shape, dtype) in want.items():
        cut = shard_of(args, par, name, shape)
        if cut is not False:
            params[name] = check_tensor(ck, name, shape, dtype, cut)
    unused = [k for k in ck.keys() if k not in want]
    if unused and warn:
        warnings.warn(unused_message(ck, unused, args.n_layers), UnusedWeightsWarning, stacklevel=2)
    return params, unused


def check_tensor(ck: Checkpoint, name: str, shape: tuple, dtype: torch.dtype,
                 cut: Optional[tuple[int, int, int]] = None) -> torch.Tensor:
    """The checkpoint's tensor ``name`` in ``dtype`` after checking its shape and dtype against the model's;
    with ``cut`` (dim, start, stop) only that slice, read alone and made contiguous."""
    got_shape, got_dtype = tuple(ck.shape(name)), ck.dtype(name)
    where = f"{ck.file_of(name)}: tensor '{ck.raw_name(name)}'"
    if got_shape != tuple(shape):
        raise WeightsError(f"{where} has shape {list(got_shape)}, the model expects {list(shape)}")
    fp8 = torch.float8_e4m3fn
    if (got_dtype == fp8) != (dtype == fp8) or (dtype != fp8 and got_dtype not in _FLOATS):
        raise WeightsError(f"{where} is {str(got_dtype).replace('torch.', '')}, the model expects "
                           f"{str(dtype).replace('torch.', '')}")
    if cut is None:
        return ck.get(name).to(dtype)
    return ck.get_slice(name, *cut).to(dtype).contiguous()


# --- one call: model + tokenizer + generation config -----------------------------------------------------

@dataclass
class Pretrained:
    """What ``load_pretrained`` returns."""
    args: Any                      # config.ModelArgs
    model: Any                     # model.Model: model(tokens[B, S], start_pos) -> logits [B, vocab]
    tokenizer: Any                 # tokenizer.HFTokenizer (or ByteTokenizer when the folder has none)
    generation_config: dict        # generation_config.json (bos/eos ids, sampling defaults), {} if absent
    checkpoint: Checkpoint
    params: dict = field(repr=False, default_factory=dict)
    unused: list = field(default_factory=list)
    library: Any = None            # library.Library when built ahead of time, else None

    def reference(self) -> Any:
        """The PyTorch reference (``reference.Transformer``) on the same parameters (for checks)."""
        from .reference import Transformer
        ref = Transformer(self.args)
        ref.load_state_dict(self.params, strict=True)
        return ref


def load_pretrained(source: Any, library: Optional[str] = None, config: Any = None, target: str = "cpu",
                    max_batch_size: Optional[int] = None, max_seq_len: Optional[int] = None,
                    attention: str = "reference", warn: bool = True, par: Any = None) -> Pretrained:
    """Model, tokenizer and generation config of a checkpoint folder (or index / files) in one call.

    ``config``: a built-in name, a config.json / ModelArgs JSON path or a ``ModelArgs``; default the
    folder's config.json (or the library's arguments). ``library``: a folder written by ``tilec model
    build`` (its ``max_batch_size``/``max_seq_len`` then rule, and its configuration must be the
    checkpoint's); without it the kernels are compiled in this process for ``target`` (cached on disk).
    ``par`` (``parallel.Parallel``): load this rank's shard only and build its part of a tensor/expert-
    parallel model (a library must then have been built for that world size: ``build --tp``).
    """
    from .config import ModelArgs, check_buildable, load_config, same_model
    from .library import LibraryError, load_library
    from .model import JitKernels, Model
    from .tokenizer import load_generation_config, load_tokenizer
    ck = source if isinstance(source, Checkpoint) else Checkpoint(source)
    sizes = {k: v for k, v in (("max_batch_size", max_batch_size), ("max_seq_len", max_seq_len)) if v}
    lib = load_library(library) if library else None
    if isinstance(config, ModelArgs):
        args = config
    elif config is not None:
        args = load_config(config, **sizes)
    elif ck.config is not None:
        args = ck.model_args(**sizes)
    elif lib is not None:
        args = lib.args
    else:
        raise CheckpointError(f"{ck.source}: no config.json; name a configuration")
    if lib is not None:
        diff = same_model(args, lib.args)
        if diff:
            raise LibraryError(f"the library {library} was built for another configuration than the checkpoint "
                               f"({diff}): rebuild it with `tilec model build --weights {ck.folder or '...'}`")
        for key, val in sizes.items():
            if val > getattr(lib.args, key):
                raise LibraryError(f"{key}={val} is over the library's {getattr(lib.args, key)} "
                                   f"(rebuild with `tilec model build --{key.replace('_', '-')} {val}`)")
        args = lib.args
    check_buildable(args, target if lib is None else lib.target)
    from .parallel import SINGLE, check_parallel
    par = par or SINGLE
    check_parallel(args, par.world)
    if lib is not None and lib.world != par.world:
        raise LibraryError(f"the library {library} was built for {lib.world} rank(s), this run has {par.world}: "
                           f"rebuild it with `tilec model build --tp {par.world}`")
    params, unused = load_params(args, ck, warn=warn and par.rank == 0, par=par)
    kernels = lib if lib is not None else JitKernels(target)
    model = Model(args, params, kernels, target if lib is None else lib.target, attention, par)
    tok_dir = ck.folder if ck.folder and os.path.isfile(os.path.join(ck.folder, "tokenizer.json")) else library
    tok = load_tokenizer(tok_dir, args.vocab_size)
    return Pretrained(args, model, tok, load_generation_config(tok_dir), ck, params, unused, lib)


def load_weights(model: "torch.nn.Module", paths) -> "torch.nn.Module":
    """Load weights into ``model`` (a ``reference.Transformer``): every parameter once, each with its
    shape. ``paths``: safetensors file(s), a checkpoint folder, its index json, or a ``Checkpoint``
    (``checkpoint.load_params`` does the checks)."""
    params, _ = load_params(model.args, paths, warn=True)
    expected = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in params.items():
            expected[name].copy_(value)
    return model
