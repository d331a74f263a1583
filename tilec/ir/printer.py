"""The IR printer: Tile IR -> its text form (the ``.tir`` format).

Text is the contract between stages (docs/design.md, decision 2): every node has exactly one printed form,
printing is deterministic, and ``parser.parse`` reads the text back to an equal IR. Cache keys hash the
output of ``print_func(func, locs=False)``. The form is described for readers in docs/internals.md,
section "The IR text form"; ``grammar.lark`` is its grammar.

Expressions print with the fewest parentheses that keep their tree under Python-like precedence. Buffer
and variable names that collide with a keyword of the text form print with a ``$`` prefix (``$copy``).
"""
from __future__ import annotations

import json
import math
import re
from typing import Union

from . import dtypes
from . import nodes as n
from ..errors import InternalError

INDENT = "  "

# Words the grammar reserves; a buffer or variable with such a name prints as ``$name``.
KEYWORDS = frozenset((
    "kernel", "launch", "alloc", "let", "for", "in", "while", "if", "else", "copy", "gemm", "fill",
    "reduce", "atomic", "cumsum", "hint", "and", "or", "not", "true", "false", "inf", "nan", "cast",
    "reinterpret",
))
_IDENT = re.compile(r"[^\W\d]\w*\Z")

# Binding strength of each operator, weakest first (Python's order). Atoms bind tightest.
PREC_OR, PREC_AND, PREC_NOT, PREC_CMP, PREC_BOR, PREC_BXOR, PREC_BAND = 1, 2, 3, 4, 5, 6, 7
PREC_SHIFT, PREC_SUM, PREC_PROD, PREC_UNARY, PREC_ATOM = 8, 9, 10, 11, 12
BINARY_PREC = {
    "or": PREC_OR, "and": PREC_AND,
    "==": PREC_CMP, "!=": PREC_CMP, "<": PREC_CMP, "<=": PREC_CMP, ">": PREC_CMP, ">=": PREC_CMP,
    "|": PREC_BOR, "^": PREC_BXOR, "&": PREC_BAND, "<<": PREC_SHIFT, ">>": PREC_SHIFT,
    "+": PREC_SUM, "-": PREC_SUM, "*": PREC_PROD, "/": PREC_PROD, "//": PREC_PROD, "%": PREC_PROD,
}


def name(text: str, escape: bool = True) -> str:
    """A buffer, variable, kernel or hint name as it is printed. Kernel and hint names stand where
    only a name can (``escape=False``), so they never need the ``$``."""
    if not _IDENT.match(text):
        raise InternalError(f"name {text!r} is not an identifier and cannot be printed", "printer")
    return "$" + text if escape and text in KEYWORDS else text


# ---------------------------------------------------------------------------------------------------
# Expressions


def _float_text(value: float) -> str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return repr(float(value))


def const_text(c: n.Const) -> str:
    """A constant: ``3``, ``1.5``, ``true``, ``-inf``; dtypes other than int32/float32/bool get a suffix."""
    if c.type == "bool":
        return "true" if c.value else "false"
    if c.type not in dtypes.DTYPES:
        raise InternalError(f"constant of unknown dtype {c.type!r}", "printer")
    text = _float_text(float(c.value)) if dtypes.is_float(c.type) else str(int(c.value))
    if c.type in ("int32", "float32"):
        return text
    return f"{text}:{dtypes.info(c.type).short}"


def _const_prec(c: n.Const) -> int:
    return PREC_UNARY if const_text(c).startswith("-") else PREC_ATOM


def _args(args) -> str:
    return ", ".join(print_expr(a) for a in args)


def _expr(e: n.Expr) -> tuple[str, int]:
    """Text of ``e`` and the binding strength of its outermost construct."""
    if isinstance(e, n.Const):
        return const_text(e), _const_prec(e)
    if isinstance(e, n.Var):
        return name(e.name), PREC_ATOM
    if isinstance(e, n.Load):
        return f"{name(e.buffer.name)}[{_args(e.indices)}]", PREC_ATOM
    if isinstance(e, n.BinOp):
        return _binop(e)
    if isinstance(e, n.UnaryOp):
        return _unary(e)
    if isinstance(e, n.Call):
        return f"{e.func}({_args(e.args)})", PREC_ATOM
    if isinstance(e, n.Cast):
        return f"cast<{e.type}>({print_expr(e.value)})", PREC_ATOM
    if isinstance(e, n.Reinterpret):
        return f"reinterpret<{e.type}>({print_expr(e.value)})", PREC_ATOM
    if isinstance(e, n.Select):
        return f"select({_args((e.cond, e.a, e.b))})", PREC_ATOM
    raise InternalError(f"cannot print expression {type(e).__name__}", "printer")


def _operand(e: n.Expr, min_prec: int) -> str:
    text, prec = _expr(e)
    return text if prec >= min_prec else f"({text})"


def _binop(e: n.BinOp) -> tuple[str, int]:
    if e.op in ("min", "max"):
        return f"{e.op}({_args((e.a, e.b))})", PREC_ATOM
    prec = BINARY_PREC.get(e.op)
    if prec is None:
        raise InternalError(f"unknown binary operator {e.op!r}", "printer")
    # Left-associative: the left operand may be of the same strength, the right must bind tighter.
    # Comparisons do not chain, so both their operands must bind tighter.
    left_min = prec + 1 if prec == PREC_CMP else prec
    return f"{_operand(e.a, left_min)} {e.op} {_operand(e.b, prec + 1)}", prec


def _unary(e: n.UnaryOp) -> tuple[str, int]:
    if e.op == "not":
        return f"not {_operand(e.a, PREC_NOT)}", PREC_NOT
    if e.op not in ("-", "~"):
        raise InternalError(f"unknown unary operator {e.op!r}", "printer")
    if e.op == "-" and isinstance(e.a, n.Const):
        # `-3` reads back as the constant -3, so a negation of a literal keeps its parentheses.
        return f"-({const_text(e.a)})", PREC_UNARY
    return f"{e.op}{_operand(e.a, PREC_UNARY)}", PREC_UNARY


def print_expr(e: n.Expr) -> str:
    """The text of one expression."""
    return _expr(e)[0]


# ---------------------------------------------------------------------------------------------------
# Buffers, regions, statements


def buffer_type(b: n.Buffer) -> str:
    """``float16[M, 1024]`` (``float32[]`` for a scalar)."""
    return f"{b.dtype}[{_args(b.shape)}]"


def is_whole(r: n.Region) -> bool:
    zero = n.Const(0)
    return all(s == zero for s in r.starts) and tuple(r.extents) == tuple(r.buffer.shape)


def print_region(r: n.Region) -> str:
    """``A[i * 64 +: 64, 0 +: 32]``, or the bare buffer name when the region is the whole buffer."""
    if is_whole(r):
        return name(r.buffer.name)
    parts = ", ".join(f"{print_expr(s)} +: {print_expr(x)}" for s, x in zip(r.starts, r.extents))
    return f"{name(r.buffer.name)}[{parts}]"


def _hint_arg(a: Union[int, float, str, bool]) -> str:
    if isinstance(a, bool):
        return "true" if a else "false"
    if isinstance(a, int):
        return str(a)
    if isinstance(a, float):
        return _float_text(a)
    if isinstance(a, str):
        return json.dumps(a)
    raise InternalError(f"hint argument {a!r} is not an int, float, bool or string", "printer")


def _policy(p: str) -> str:
    return p if _IDENT.match(p) else json.dumps(p)


def _header(s: n.Stmt) -> str:
    """The one-line form of a statement without a body."""
    if isinstance(s, n.Alloc):
        b = s.buffer
        return f"{name(b.name)} = alloc {b.scope} {buffer_type(b)}"
    if isinstance(s, n.Let):
        return f"let {name(s.var.name)}: {s.var.type} = {print_expr(s.value)}"
    if isinstance(s, n.Store):
        return f"{name(s.buffer.name)}[{_args(s.indices)}] = {print_expr(s.value)}"
    if isinstance(s, n.Copy):
        return f"copy {print_region(s.src)} -> {print_region(s.dst)}"
    if isinstance(s, n.Gemm):
        flags = [f for f, on in (("transpose_a", s.trans_a), ("transpose_b", s.trans_b),
                                 ("clear", s.clear_accum)) if on]
        if s.policy:
            flags.append(f"policy={_policy(s.policy)}")
        text = f"gemm {print_region(s.a)}, {print_region(s.b)} -> {print_region(s.c)}"
        return " ".join([text] + flags)
    if isinstance(s, n.Fill):
        return f"fill {print_region(s.dst)}, {print_expr(s.value)}"
    if isinstance(s, n.Reduce):
        text = f"reduce {s.kind} {print_region(s.src)} -> {print_region(s.dst)} dim={s.dim}"
        return text if s.clear else text + " noclear"
    if isinstance(s, n.Atomic):
        value = print_region(s.value) if isinstance(s.value, n.Region) else print_expr(s.value)
        return f"atomic {s.kind} {print_region(s.dst)} <- {value}"
    if isinstance(s, n.Cumsum):
        text = f"cumsum {print_region(s.src)} -> {print_region(s.dst)} dim={s.dim}"
        return text + " reverse" if s.reverse else text
    if isinstance(s, n.Hint):
        return f"hint {name(s.name, escape=False)}({', '.join(_hint_arg(a) for a in s.args)})"
    raise InternalError(f"cannot print statement {type(s).__name__}", "printer")


def _opener(s: n.Stmt) -> str:
    """The first line of a statement that has a body, up to its ``{``."""
    if isinstance(s, n.For):
        var = name(s.var.name)
        if s.var.type != dtypes.INDEX:
            var += f": {s.var.type}"
        stages = f", stages={s.stages}" if s.stages else ""
        return f"for {var} in {s.kind}({print_expr(s.start)}, {print_expr(s.stop)}{stages}) {{"
    if isinstance(s, n.While):
        return f"while ({print_expr(s.cond)}) {{"
    if isinstance(s, n.If):
        return f"if ({print_expr(s.cond)}) {{"
    if isinstance(s, n.Launch):
        if any(v.type != dtypes.INDEX for v in s.block_vars):
            raise InternalError("block variables are int32; the text form has no other type", "printer")
        dims = ", ".join(f"{name(v.name)}: {print_expr(g)}" for v, g in zip(s.block_vars, s.grid))
        return f"launch ({dims}) threads={s.threads} {{"
    raise AssertionError(type(s).__name__)


def _line(out: list[str], depth: int, text: str, loc, locs: bool) -> None:
    suffix = f"  # {loc}" if locs and loc is not None else ""
    out.append(INDENT * depth + text + suffix)


def _body(out: list[str], body: n.Body, depth: int, locs: bool) -> None:
    for s in body:
        _stmt(out, s, depth, locs)


def _stmt(out: list[str], s: n.Stmt, depth: int, locs: bool) -> None:
    if isinstance(s, n.Launch) and len(s.grid) != len(s.block_vars):
        raise InternalError("launch with different numbers of grid extents and block variables", "printer")
    if not isinstance(s, (n.For, n.While, n.If, n.Launch)):
        _line(out, depth, _header(s), s.loc, locs)
        return
    _line(out, depth, _opener(s), s.loc, locs)
    _body(out, s.then_body if isinstance(s, n.If) else s.body, depth + 1, locs)
    if isinstance(s, n.If) and s.else_body:
        out.append(INDENT * depth + "} else {")
        _body(out, s.else_body, depth + 1, locs)
    out.append(INDENT * depth + "}")


def print_stmt(s: n.Stmt, locs: bool = True) -> str:
    """The text of one statement (with its nested bodies), without a trailing newline."""
    out: list[str] = []
    _stmt(out, s, 0, locs)
    return "\n".join(out)


def print_func(func: n.Func, locs: bool = True) -> str:
    """The text of one kernel, ending with a newline. ``locs=False`` drops the location comments."""
    if any(isinstance(d, n.Var) and d.type != dtypes.INDEX for p in func.params for d in p.shape):
        raise InternalError(f"kernel {func.name}: symbolic dimensions are int32", "printer")
    params = ", ".join(f"{name(p.name)}: {p.scope} {buffer_type(p)}" for p in func.params)
    out: list[str] = []
    _line(out, 0, f"kernel {name(func.name, escape=False)}({params}) {{", func.loc, locs)
    _body(out, func.body, 1, locs)
    out.append("}")
    return "\n".join(out) + "\n"


def print_module(module: n.Module, locs: bool = True) -> str:
    """The text of a module: its kernels in order, separated by a blank line."""
    return "\n".join(print_func(f, locs) for f in module.funcs)
