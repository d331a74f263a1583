"""Argument binding for compiled kernels: check the caller's arrays against the kernel's signature.

The runtime sits between the user's arrays and a target's ``Executable.run(args, dims)``. This module
checks every input (count, array kind, dtype, rank, shape, device) with errors that name the
parameter, binds the symbolic ``T.dynamic`` dimensions from the argument shapes, converts arrays to what
the target takes (numpy arrays in storage dtype for host targets: bfloat16 as uint16 bits, float8_e4m3
as uint8 bits, zero-copy from torch CPU tensors and from numpy arrays of ``ml_dtypes.bfloat16`` /
``ml_dtypes.float8_e4m3fn``; torch CUDA tensors for ``cuda``), and allocates the ``out_idx`` outputs
with their symbolic shapes resolved.

Accepted arguments: numpy arrays, torch tensors, and any object with the DLPack protocol
(``__dlpack__``/``__dlpack_device__``: JAX, CuPy, ...), taken zero-copy through ``numpy.from_dlpack``
(host targets; ``torch.from_dlpack`` when numpy cannot hold its dtype) or ``torch.from_dlpack``
(``cuda``). A non-contiguous argument is copied to a contiguous temporary (one ``TilecWarning`` per
kernel), and written back after the run when the kernel writes that parameter; ``strict=True`` refuses
it instead (``as_contiguous``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import ml_dtypes
import numpy as np

from ..errors import TilecError
from ..ir import dtypes, nodes

# tilec dtype -> torch dtype attribute name.
TORCH_DTYPES: dict[str, str] = {
    "float32": "float32", "float16": "float16", "bfloat16": "bfloat16", "float8_e4m3": "float8_e4m3fn",
    "float64": "float64", "int8": "int8", "int16": "int16", "int32": "int32", "int64": "int64",
    "uint8": "uint8", "uint16": "uint16", "uint32": "uint32", "bool": "bool",
}

INT32_MAX = 2**31 - 1

# numpy dtypes (from ml_dtypes) that hold a tilec dtype by value; their storage is a same-size view.
ML_DTYPES: dict[str, np.dtype] = {"bfloat16": np.dtype(ml_dtypes.bfloat16),
                                  "float8_e4m3": np.dtype(ml_dtypes.float8_e4m3fn)}


def torch_dtype(name: str) -> Any:
    """The torch dtype for tilec dtype ``name``."""
    import torch
    return getattr(torch, TORCH_DTYPES[name])


def is_torch_tensor(x: Any) -> bool:
    # Checked by module name so that numpy-only callers never import torch.
    return type(x).__module__.startswith("torch") and hasattr(x, "data_ptr")


def tilec_dtype_of_torch(t: Any) -> str:
    name = str(t.dtype).removeprefix("torch.")
    for ours, theirs in TORCH_DTYPES.items():
        if theirs == name:
            return ours
    return name


def tilec_dtype_of_numpy(a: np.ndarray, expected: str) -> str:
    """The tilec dtype a numpy array holds, read as ``expected`` when its storage dtype matches."""
    if a.dtype == dtypes.storage_numpy(expected) or (expected in ML_DTYPES and a.dtype == ML_DTYPES[expected]):
        return expected
    return str(a.dtype)


def is_ml_dtypes(x: Any) -> bool:
    """Whether ``x`` is a numpy array of an ml_dtypes type tilec knows (bfloat16, float8_e4m3fn)."""
    return isinstance(x, np.ndarray) and x.dtype in ML_DTYPES.values()


def is_dlpack(x: Any) -> bool:
    return hasattr(x, "__dlpack__") and hasattr(x, "__dlpack_device__")


def from_dlpack(p: nodes.Buffer, x: Any, array_kind: str) -> Any:
    """A numpy array (host targets) or torch tensor sharing memory with DLPack object ``x``."""
    errors = []
    order = ("torch",) if array_kind == "torch-cuda" else ("numpy", "torch")
    for lib in order:
        try:
            if lib == "numpy":
                return np.from_dlpack(x)
            import torch
            return torch.from_dlpack(x)
        except Exception as e:  # each library names what it cannot take (dtype, device)
            errors.append(f"{lib}.from_dlpack: {type(e).__name__}: {e}")
    raise TilecError(f"parameter '{p.name}': cannot take the {type(x).__name__} through DLPack ("
                     + "; ".join(errors) + ")")


def is_contiguous(x: Any) -> bool:
    return bool(x.is_contiguous()) if is_torch_tensor(x) else bool(x.flags.c_contiguous)


def as_contiguous(p: nodes.Buffer, x: Any, strict: bool) -> Any:
    """``x`` itself when row-major contiguous, else a contiguous copy (an error under ``strict``)."""
    if is_contiguous(x):
        return x
    if strict:
        raise TilecError(f"parameter '{p.name}': expected a contiguous (row-major) array (strict=True); "
                         f"call .contiguous() (torch) or np.ascontiguousarray (numpy) first, or compile "
                         f"without strict=True to have it copied")
    return x.contiguous() if is_torch_tensor(x) else np.ascontiguousarray(x)


# ---------------------------------------------------------------------------------------------------
# Symbolic shapes


def eval_index(expr: nodes.Expr, dims: dict[str, int]) -> Optional[int]:
    """Evaluate an integer shape expression; ``None`` when it uses a symbol not yet bound."""
    if isinstance(expr, nodes.Const):
        return int(expr.value)
    if isinstance(expr, nodes.Var):
        return dims.get(expr.name)
    if isinstance(expr, nodes.Cast):
        return eval_index(expr.value, dims)
    if isinstance(expr, nodes.UnaryOp) and expr.op == "-":
        a = eval_index(expr.a, dims)
        return None if a is None else -a
    if isinstance(expr, nodes.BinOp):
        a, b = eval_index(expr.a, dims), eval_index(expr.b, dims)
        if a is None or b is None:
            return None
        return _binop(expr.op, a, b)
    raise TilecError(f"unsupported expression in a parameter shape: {type(expr).__name__}", expr.loc)


def _binop(op: str, a: int, b: int) -> int:
    if op in ("/", "//", "%") and b == 0:
        raise TilecError(f"division by zero in a parameter shape ({a} {op} 0)")
    table = {
        "+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b, "//": lambda: a // b,
        "%": lambda: a % b, "min": lambda: min(a, b), "max": lambda: max(a, b),
        "/": lambda: int(a / b),  # C division truncates toward zero
        "<<": lambda: a << b, ">>": lambda: a >> b, "&": lambda: a & b, "|": lambda: a | b,
        "^": lambda: a ^ b,
    }
    if op not in table:
        raise TilecError(f"unsupported operator '{op}' in a parameter shape")
    return table[op]()


def shape_text(shape: Sequence[nodes.Expr]) -> str:
    """A shape for messages: ``[M, 1024]``."""
    def one(e: nodes.Expr) -> str:
        if isinstance(e, nodes.Const):
            return str(e.value)
        if isinstance(e, nodes.Var):
            return e.name
        try:
            from ..ir.printer import print_expr
            return print_expr(e)
        except ImportError:
            return "?"
    return "[" + ", ".join(one(e) for e in shape) + "]"


def bind_dims(params: Sequence[nodes.Buffer], shapes: dict[int, tuple[int, ...]],
              given: Optional[dict[str, int]] = None) -> dict[str, int]:
    """Bind symbolic dims from the actual ``shapes`` of parameters (by index) and check every dim.

    A dimension that is a bare symbol binds it, from the first parameter that has it; dimensions that
    are expressions (``M * 4``, ``(M + 63) // 64 * 64``) are then evaluated with the bound symbols and
    checked. An expression whose symbol no given shape binds is an error naming the parameter (the
    runtime does not solve ``M * 4 == 12`` for ``M``).
    """
    dims: dict[str, int] = dict(given or {})
    where: dict[str, str] = {k: "given" for k in dims}
    for i, shape in shapes.items():
        p = params[i]
        for axis, (expr, actual) in enumerate(zip(p.shape, shape)):
            if isinstance(expr, nodes.Var) and expr.name not in dims:
                if actual > INT32_MAX:
                    raise TilecError(f"parameter '{p.name}': dimension {axis} ({expr.name}) is {actual}, "
                                     f"over the int32 index range")
                dims[expr.name] = int(actual)
                where[expr.name] = f"parameter '{p.name}' dimension {axis}"
    for i, shape in shapes.items():
        p = params[i]
        for axis, (expr, actual) in enumerate(zip(p.shape, shape)):
            want = eval_index(expr, dims)
            if want is None:
                missing = [s for s in expr_symbols(expr) if s not in dims]
                raise TilecError(f"parameter '{p.name}': dimension {axis} is {shape_text([expr])[1:-1]}, "
                                 f"but symbol {', '.join(missing)} is a whole dimension of no input, so "
                                 f"no argument's shape binds it")
            if want != actual:
                detail = _mismatch_detail(expr, want, dims, where)
                raise TilecError(f"parameter '{p.name}': expected shape {shape_text(p.shape)}, got "
                                 f"{list(shape)}: dimension {axis} should be {want}{detail}")
    return dims


def _mismatch_detail(expr: nodes.Expr, want: int, dims: dict[str, int], where: dict[str, str]) -> str:
    if isinstance(expr, nodes.Var) and expr.name in where:
        return f" ({expr.name} = {want}, bound by {where[expr.name]})"
    names = [s for s in expr_symbols(expr) if s in where]
    if not names:
        return ""
    bound = "; ".join(f"{s} = {dims[s]}, bound by {where[s]}" for s in names)
    return f" ({shape_text([expr])[1:-1]} with {bound})"


def expr_symbols(expr: nodes.Expr, out: Optional[list[str]] = None) -> list[str]:
    """Names of the symbols in one shape expression, in order of first appearance (added to ``out``)."""
    out = [] if out is None else out
    if isinstance(expr, nodes.Var):
        if expr.name not in out:
            out.append(expr.name)
    elif isinstance(expr, nodes.BinOp):
        expr_symbols(expr.a, out)
        expr_symbols(expr.b, out)
    elif isinstance(expr, nodes.UnaryOp):
        expr_symbols(expr.a, out)
    elif isinstance(expr, nodes.Cast):
        expr_symbols(expr.value, out)
    return out


def symbols_of(params: Sequence[nodes.Buffer]) -> list[str]:
    """Names of the symbolic dimensions of a signature, in order of first appearance."""
    out: list[str] = []
    for p in params:
        for e in p.shape:
            expr_symbols(e, out)
    return out


# ---------------------------------------------------------------------------------------------------
# Checking and converting one call's arguments


@dataclass
class BoundCall:
    """The arrays to hand to ``Executable.run`` plus what the caller gets back."""
    args: list[Any]            # one per parameter, in the target's array kind
    dims: dict[str, int]
    outputs: list[Any]         # the user-facing output objects, in out_idx order
    use_torch: bool
    # (caller's non-contiguous array, its contiguous copy) for written parameters: copied back after the run
    copy_back: list[tuple[Any, Any]] = field(default_factory=list)


def check_array(p: nodes.Buffer, x: Any, array_kind: str) -> tuple[int, ...]:
    """Check one input against parameter ``p``; return its shape."""
    if is_torch_tensor(x):
        got = tilec_dtype_of_torch(x)
        contiguous = x.is_contiguous()
        if array_kind == "torch-cuda" and not x.is_cuda:
            raise TilecError(f"parameter '{p.name}': this target runs on the GPU and needs a CUDA tensor, "
                             f"got a tensor on '{x.device}'")
        if array_kind == "numpy" and x.device.type != "cpu":
            raise TilecError(f"parameter '{p.name}': this target runs on the host and needs a CPU tensor, "
                             f"got a tensor on '{x.device}'")
    elif isinstance(x, np.ndarray):
        if array_kind == "torch-cuda":
            raise TilecError(f"parameter '{p.name}': this target runs on the GPU and needs a CUDA torch "
                             f"tensor, got a numpy array")
        got = tilec_dtype_of_numpy(x, p.dtype)
        contiguous = x.flags.c_contiguous
    else:
        raise TilecError(f"parameter '{p.name}': expected a numpy array or torch tensor of "
                         f"{p.dtype}{shape_text(p.shape)}, got {type(x).__name__} (objects with the DLPack "
                         f"protocol, __dlpack__, are taken too)")
    if got != p.dtype:
        hint = ""
        if isinstance(x, np.ndarray) and p.dtype in ("bfloat16", "float8_e4m3"):
            hint = (f" (numpy holds {p.dtype} as ml_dtypes.{ML_DTYPES[p.dtype].name} or as "
                    f"{dtypes.storage_numpy(p.dtype)} bit patterns: convert with .astype(ml_dtypes."
                    f"{ML_DTYPES[p.dtype].name}) or tilec.numerics.from_float32)")
        raise TilecError(f"parameter '{p.name}': expected dtype {p.dtype}, got {got}{hint}")
    if len(x.shape) != len(p.shape):
        raise TilecError(f"parameter '{p.name}': expected a {len(p.shape)}-d array of shape "
                         f"{shape_text(p.shape)}, got {len(x.shape)}-d shape {list(x.shape)}")
    if not contiguous:  # the runtime makes contiguous copies (as_contiguous) before calling this
        raise TilecError(f"parameter '{p.name}': expected a contiguous (row-major) array; "
                         f"call .contiguous() (torch) or np.ascontiguousarray (numpy) first")
    return tuple(int(s) for s in x.shape)


def to_storage_numpy(x: Any, dtype: str) -> np.ndarray:
    """A numpy view of ``x`` in ``dtype``'s storage dtype, sharing memory with it (torch CPU or numpy)."""
    if isinstance(x, np.ndarray):
        if x.dtype in ML_DTYPES.values():
            return x.view(dtypes.storage_numpy(dtype))
        return x
    t = x.detach()
    if dtype == "bfloat16":
        import torch
        return t.view(torch.int16).numpy().view(np.uint16)
    if dtype == "float8_e4m3":
        import torch
        return t.view(torch.uint8).numpy()
    return t.numpy()


def allocate(p: nodes.Buffer, dims: dict[str, int], use_torch: bool, device: Any,
             poison: bool = False) -> Any:
    """A fresh output array for parameter ``p``: uninitialised (TileLang's torch.empty), or with
    ``poison`` filled with NaN (integers: their maximum) so that an unwritten element shows."""
    shape = []
    for axis, e in enumerate(p.shape):
        v = eval_index(e, dims)
        if v is None:
            missing = [s for s in symbols_of([p]) if s not in dims]
            raise TilecError(f"output parameter '{p.name}': cannot size dimension {axis}: symbol "
                             f"{', '.join(missing)} appears in no input's shape")
        if v < 0:
            raise TilecError(f"output parameter '{p.name}': dimension {axis} evaluates to {v}")
        shape.append(v)
    if use_torch:
        import torch
        t = torch.empty(shape, dtype=torch_dtype(p.dtype), device=device)
        if poison:
            if t.device.type == "cpu":
                _poison(to_storage_numpy(t, p.dtype), p.dtype)
            else:
                t.fill_(float("nan") if dtypes.is_float(p.dtype) else _int_poison(p.dtype))
        return t
    a = np.empty(shape, dtype=dtypes.storage_numpy(p.dtype))
    if poison:
        _poison(a, p.dtype)
    return a


def _int_poison(dtype: str) -> int:
    return True if dtype == "bool" else int(np.iinfo(dtypes.storage_numpy(dtype)).max)


def _poison(a: np.ndarray, dtype: str) -> None:
    if dtypes.is_float(dtype):
        from ..numerics import nan_storage
        a.fill(nan_storage(dtype))
    else:
        a.fill(_int_poison(dtype))
