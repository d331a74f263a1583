"""The IR parser: ``.tir`` text -> Tile IR, the inverse of ``printer.py``.

``parse(print_module(m)) == m`` for every module (statement locations included). Lark's LALR parser
reads the text with ``grammar.lark``; a small builder then walks the parse tree with a scope chain and
resolves every name to its binding (a parameter, allocation, loop variable, block variable or ``let``).
Names in parameter shapes that nothing binds are symbolic int32 dimensions. Syntax errors, unknown
names and malformed statements raise ``TilecError`` at the line and column in the text; the statement
locations recorded in ``# file:line:col`` comments become the nodes' ``loc``. Expressions, buffers and
regions take the location of the statement they appear in.
"""
from __future__ import annotations

import json
import math
import re
import threading
from pathlib import Path
from typing import Optional, Union

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from . import dtypes
from . import nodes as n
from ..errors import TilecError, register_source

_LOC_COMMENT = re.compile(r"#\s*(\S.*):(\d+):(\d+)\s*\Z")
_state = threading.local()  # the loc comments of the text being lexed (Lark calls back per token)
_lark: Optional[Lark] = None


def _on_comment(tok: Token) -> Token:
    m = _LOC_COMMENT.match(tok.value)
    if m:
        _state.locs[tok.line] = n.Loc(m.group(1), int(m.group(2)), int(m.group(3)))
    return tok


def _get_lark() -> Lark:
    global _lark
    if _lark is None:
        grammar = Path(__file__).with_name("grammar.lark").read_text()
        _lark = Lark(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=True,
                     lexer_callbacks={"COMMENT": _on_comment})
    return _lark


def parse(text: str, filename: str = "<string>") -> n.Module:
    """Parse a ``.tir`` text holding any number of kernels."""
    register_source(filename, text)
    _state.locs = {}
    try:
        tree = _get_lark().parse(text)
    except UnexpectedInput as e:
        raise _syntax_error(e, text, filename) from None
    locs, _state.locs = _state.locs, {}
    return n.Module(tuple(_Builder(filename, locs).kernel(k) for k in tree.children if k is not None))


def parse_func(text: str, filename: str = "<string>") -> n.Func:
    """Parse a ``.tir`` text that holds exactly one kernel."""
    module = parse(text, filename)
    if len(module.funcs) != 1:
        raise TilecError(f"expected one kernel, found {len(module.funcs)}", n.Loc(filename, 1, 1))
    return module.funcs[0]


def _describe(terminal: str) -> str:
    if terminal == "_NL":
        return "end of line"
    if terminal == "$END":
        return "end of input"
    try:
        pattern = _get_lark().get_terminal(terminal).pattern
    except KeyError:
        return terminal
    return repr(pattern.value) if pattern.type == "str" else terminal.lower()


def _syntax_error(e: UnexpectedInput, text: str, filename: str) -> TilecError:
    line, col = getattr(e, "line", -1), getattr(e, "column", -1)
    if isinstance(e, UnexpectedEOF) or line is None or line < 1:
        lines = text.splitlines() or [""]
        line, col = len(lines), len(lines[-1]) + 1
    if isinstance(e, UnexpectedToken):
        tok = e.token
        got = _describe(tok.type) if tok.type in ("_NL", "$END") else repr(str(tok))
        # `accepts` includes the keywords that the lexer folds into NAME; `expected` does not.
        expected = ", ".join(sorted(_describe(t) for t in (e.accepts or e.expected)))
        message = f"syntax error: unexpected {got}; expected {expected}"
    elif isinstance(e, UnexpectedCharacters):
        message = f"syntax error: unexpected character {text[e.pos_in_stream]!r}"
    else:
        message = "syntax error: unexpected end of input"
    return TilecError(message, n.Loc(filename, line, max(col, 1)))


Binding = Union[n.Var, n.Buffer]


class _Builder:
    """Turns one kernel's parse tree into nodes, resolving names through a chain of scopes."""

    def __init__(self, filename: str, locs: dict[int, n.Loc]):
        self.filename = filename
        self.locs = locs
        self.scopes: list[dict[str, Binding]] = []
        self.loc: Optional[n.Loc] = None  # the current statement's location, given to its parts

    # -- helpers --------------------------------------------------------------------------------

    def error(self, message: str, at: Union[Token, Tree]) -> TilecError:
        if isinstance(at, Tree):
            line, col = at.meta.line, at.meta.column
        else:
            line, col = at.line, at.column
        return TilecError(message, n.Loc(self.filename, line, col))

    def lookup(self, tok: Token) -> Binding:
        name = _name(tok)
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        raise self.error(f"unknown name '{name}'", tok)

    def buffer(self, tok: Token) -> n.Buffer:
        b = self.lookup(tok)
        if not isinstance(b, n.Buffer):
            raise self.error(f"'{b.name}' is a scalar variable, not a buffer", tok)
        return b

    def bind(self, obj: Binding) -> None:
        self.scopes[-1][obj.name] = obj

    def dtype(self, tok: Token) -> str:
        if tok not in dtypes.DTYPES:
            raise self.error(f"unknown dtype '{tok}' (known: {', '.join(sorted(dtypes.DTYPES))})", tok)
        return str(tok)

    def choice(self, tok: Token, allowed: tuple[str, ...], what: str) -> str:
        if tok not in allowed:
            raise self.error(f"unknown {what} '{tok}' (expected one of: {', '.join(allowed)})", tok)
        return str(tok)

    def block(self, tree: Tree, bindings: tuple[Binding, ...] = ()) -> n.Body:
        self.scopes.append({b.name: b for b in bindings})
        try:
            return tuple(self.stmt(s) for s in tree.children)
        finally:
            self.scopes.pop()

    # -- kernels and statements -----------------------------------------------------------------

    def kernel(self, tree: Tree) -> n.Func:
        name_tok, *params, body = tree.children
        loc = self.loc = self.locs.get(tree.meta.line)
        self.scopes = [{}]
        built = []
        for p in (p for p in params if p is not None):
            pname, scope, dtype, shape = p.children
            buf = n.Buffer(_name(pname), self.shape(shape, symbolic=True), self.dtype(dtype),
                           self.choice(scope, n.SCOPES, "scope"), loc)
            self.bind(buf)
            built.append(buf)
        return n.Func(_name(name_tok), tuple(built), self.block(body), loc)

    def shape(self, tree: Tree, symbolic: bool = False) -> tuple[n.Expr, ...]:
        if symbolic:  # names nothing binds are the kernel's symbolic dimensions
            for var in tree.find_data("var"):
                tok = var.children[0]
                if not any(_name(tok) in s for s in self.scopes):
                    self.scopes[0][_name(tok)] = n.Var(_name(tok), dtypes.INDEX, self.loc)
        return tuple(self.expr(e) for e in tree.children if e is not None)

    def stmt(self, tree: Tree) -> n.Stmt:
        self.loc = self.locs.get(tree.meta.line)
        return getattr(self, "stmt_" + tree.data)(tree, self.loc)

    def stmt_launch(self, t: Tree, loc) -> n.Launch:
        *dims, key, threads, body = t.children
        if key != "threads":
            raise self.error(f"expected 'threads=', found '{key}'", key)
        dims = [d for d in dims if d is not None]
        grid = tuple(self.expr(d.children[1]) for d in dims)
        bvars = tuple(n.Var(_name(d.children[0]), dtypes.INDEX, loc) for d in dims)
        return n.Launch(grid, bvars, int(threads), self.block(body, bvars), loc)

    def stmt_alloc(self, t: Tree, loc) -> n.Alloc:
        name_tok, scope, dtype, shape = t.children
        buf = n.Buffer(_name(name_tok), self.shape(shape), self.dtype(dtype),
                       self.choice(scope, n.SCOPES, "scope"), loc)
        self.bind(buf)
        return n.Alloc(buf, loc)

    def stmt_let(self, t: Tree, loc) -> n.Let:
        name_tok, dtype, value = t.children
        var = n.Var(_name(name_tok), self.dtype(dtype), loc)
        let = n.Let(var, self.expr(value), loc)
        self.bind(var)
        return let

    def stmt_store(self, t: Tree, loc) -> n.Store:
        name_tok, *indices, value = t.children
        idx = tuple(self.expr(i) for i in indices if i is not None)
        return n.Store(self.buffer(name_tok), idx, self.expr(value), loc)

    def stmt_for(self, t: Tree, loc) -> n.For:
        name_tok, vtype, kind, start, stop, key, stages, body = t.children
        if key is not None and key != "stages":
            raise self.error(f"expected 'stages=', found '{key}'", key)
        var = n.Var(_name(name_tok), self.dtype(vtype) if vtype else dtypes.INDEX, loc)
        return n.For(var, self.expr(start), self.expr(stop), self.choice(kind, n.LOOP_KINDS, "loop kind"),
                     self.block(body, (var,)), int(stages) if stages is not None else 0, loc)

    def stmt_while(self, t: Tree, loc) -> n.While:
        cond, body = t.children
        return n.While(self.expr(cond), self.block(body), loc)

    def stmt_if(self, t: Tree, loc) -> n.If:
        cond, then, other = t.children
        return n.If(self.expr(cond), self.block(then), self.block(other) if other else (), loc)

    def stmt_copy(self, t: Tree, loc) -> n.Copy:
        return n.Copy(self.region(t.children[0]), self.region(t.children[1]), loc)

    def stmt_gemm(self, t: Tree, loc) -> n.Gemm:
        a, b, c, *flag_trees = t.children
        flags = self.flags(flag_trees, {"transpose_a": False, "transpose_b": False, "clear": False,
                                        "policy": "NAME"})
        return n.Gemm(self.region(a), self.region(b), self.region(c), "transpose_a" in flags,
                      "transpose_b" in flags, "clear" in flags, flags.get("policy", ""), loc)

    def stmt_fill(self, t: Tree, loc) -> n.Fill:
        return n.Fill(self.region(t.children[0]), self.expr(t.children[1]), loc)

    def stmt_reduce(self, t: Tree, loc) -> n.Reduce:
        kind, src, dst, *flag_trees = t.children
        flags = self.flags(flag_trees, {"dim": "INT", "noclear": False}, t, required=("dim",))
        return n.Reduce(self.choice(kind, n.REDUCE_KINDS, "reduction"), self.region(src),
                        self.region(dst), int(flags["dim"]), "noclear" not in flags, loc)

    def stmt_atomic(self, t: Tree, loc) -> n.Atomic:
        kind, dst, value = t.children
        return n.Atomic(self.choice(kind, n.ATOMIC_KINDS, "atomic kind"), self.region(dst),
                        self.operand(value), loc)

    def stmt_cumsum(self, t: Tree, loc) -> n.Cumsum:
        src, dst, *flag_trees = t.children
        flags = self.flags(flag_trees, {"dim": "INT", "reverse": False}, t, required=("dim",))
        return n.Cumsum(self.region(src), self.region(dst), int(flags["dim"]), "reverse" in flags, loc)

    def stmt_hint(self, t: Tree, loc) -> n.Hint:
        name_tok, *args = t.children
        return n.Hint(_name(name_tok), tuple(self.hint_arg(a.children[0]) for a in args if a is not None),
                      loc)

    def hint_arg(self, a: Union[Tree, Token]) -> Union[int, float, str, bool]:
        if isinstance(a, Token):
            return json.loads(a)
        value = self.expr(a)
        if not isinstance(value, n.Const) or value.type not in ("int32", "float32", "bool"):
            raise self.error("a hint argument is an int, float, bool or string literal", a)
        return value.value

    def flags(self, trees: list[Tree], known: dict[str, object], at: Optional[Tree] = None,
              required: tuple[str, ...] = ()) -> dict[str, str]:
        """Flags (``clear``) and keyword flags (``dim=1``). ``known`` maps each flag to the token type
        of its value, or to False for a flag that takes none; a NAME value may also be a string."""
        found: dict[str, str] = {}
        for f in trees:
            key, value = f.children
            if key not in known:
                raise self.error(f"unknown flag '{key}' (expected one of: {', '.join(known)})", key)
            if key in found:
                raise self.error(f"flag '{key}' given twice", key)
            want = known[key]
            if want is False:
                if value is not None:
                    raise self.error(f"flag '{key}' takes no value", key)
                found[str(key)] = ""
            elif value is None:
                raise self.error(f"flag '{key}' needs a value ({key}=...)", key)
            elif value.type == "STRING" and want == "NAME":
                found[str(key)] = json.loads(value)
            elif value.type == want:
                found[str(key)] = str(value)
            else:
                raise self.error(f"bad value '{value}' for '{key}'", value)
        for key in required:
            if key not in found:
                raise self.error(f"missing '{key}='", at)
        return found

    # -- regions and expressions ----------------------------------------------------------------

    def region(self, t: Tree) -> n.Region:
        name_tok, *slices = t.children
        buf = self.buffer(name_tok)
        slices = [s for s in slices if s is not None]
        if not slices:
            return n.Region(buf, tuple(n.Const(0, loc=self.loc) for _ in buf.shape), buf.shape, self.loc)
        return self.sliced(buf, slices, name_tok)

    def sliced(self, buf: n.Buffer, slices: list[Tree], at: Token) -> n.Region:
        if len(slices) != len(buf.shape):
            raise self.error(f"region of '{buf.name}' has {len(slices)} dimensions, "
                             f"the buffer has {len(buf.shape)}", at)
        starts = tuple(self.expr(s.children[0]) for s in slices)
        extents = tuple(self.expr(s.children[1]) for s in slices)
        return n.Region(buf, starts, extents, self.loc)

    def operand(self, t: Tree) -> Union[n.Expr, n.Region]:
        """Atomic's value: a region (``X``, ``X[a +: 4]``) or a scalar expression."""
        if t.data == "var" and isinstance(self.lookup(t.children[0]), n.Buffer):
            return self.region(t)
        if t.data == "subscript":
            indices = [i for i in t.children[1:] if i is not None]
            if indices and all(isinstance(i, Tree) and i.data == "slice" for i in indices):
                return self.sliced(self.buffer(t.children[0]), indices, t.children[0])
        return self.expr(t)

    def expr(self, t: Tree) -> n.Expr:
        return getattr(self, "expr_" + t.data)(t)

    def expr_literal(self, t: Tree, negate: bool = False) -> n.Const:
        tok, suffix = t.children if len(t.children) == 2 else (t.children[0], None)
        if tok.type in ("TRUE", "FALSE"):
            return n.Const(tok.type == "TRUE", "bool", self.loc)
        dtype = "int32" if tok.type == "INT" else "float32"
        if suffix is not None:
            try:
                dtype = dtypes.from_short(suffix)
            except ValueError:
                raise self.error(f"unknown dtype suffix '{suffix}'", suffix) from None
        if dtypes.is_float(dtype):
            value = math.nan if tok.type == "NAN" else float(tok)
        elif tok.type == "INT" and dtypes.is_int(dtype):
            value = int(tok)
        else:
            raise self.error(f"'{tok}' is not a constant of type {dtype}", tok)
        return n.Const(-value if negate and not math.isnan(value) else value, dtype, self.loc)

    def expr_var(self, t: Tree) -> n.Expr:
        v = self.lookup(t.children[0])
        if isinstance(v, n.Buffer):
            raise self.error(f"buffer '{v.name}' used as a scalar (write {v.name}[...])", t.children[0])
        return v

    def expr_subscript(self, t: Tree) -> n.Load:
        buf = self.buffer(t.children[0])
        indices = [i for i in t.children[1:] if i is not None]
        for i in indices:
            if isinstance(i, Tree) and i.data == "slice":
                raise self.error("a region ('+:') is not an expression", i)
        return n.Load(buf, tuple(self.expr(i) for i in indices), self.loc)

    def expr_call(self, t: Tree) -> n.Expr:
        name_tok, *arg_trees = t.children
        args = tuple(self.expr(a) for a in arg_trees if a is not None)
        arity = {"min": 2, "max": 2, "select": 3}.get(str(name_tok))
        if arity is not None and len(args) != arity:
            raise self.error(f"'{name_tok}' takes {arity} arguments, got {len(args)}", name_tok)
        if name_tok in ("min", "max"):
            return n.BinOp(str(name_tok), args[0], args[1], self.loc)
        if name_tok == "select":
            return n.Select(args[0], args[1], args[2], self.loc)
        if name_tok not in n.INTRINSICS:
            raise self.error(f"unknown function '{name_tok}'", name_tok)
        return n.Call(str(name_tok), args, self.loc)

    def expr_conv(self, t: Tree) -> n.Expr:
        kind, _, dtype, _, value = t.children
        node = n.Cast if kind.type == "CAST" else n.Reinterpret
        return node(self.dtype(dtype), self.expr(value), self.loc)

    def expr_paren(self, t: Tree) -> n.Expr:
        return self.expr(t.children[0])

    def expr_binop(self, t: Tree) -> n.BinOp:
        a, op, b = t.children
        return n.BinOp(str(op), self.expr(a), self.expr(b), self.loc)

    def expr_unop(self, t: Tree) -> n.Expr:
        op, a = t.children
        if op.type == "MINUS" and isinstance(a, Tree) and a.data == "literal" and a.children[0].type \
                not in ("TRUE", "FALSE"):
            return self.expr_literal(a, negate=True)  # `-3` is the constant -3; `-(3)` negates 3
        return n.UnaryOp(str(op), self.expr(a), self.loc)


def _name(tok: Token) -> str:
    return tok[1:] if tok.startswith("$") else str(tok)
