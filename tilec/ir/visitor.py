"""Generic traversal and rewriting of Tile IR, shared by every pass.

Nodes are frozen dataclasses (docs/design.md, decision 1), so one generic walker over their fields serves every
node type: a node added to ``nodes.py`` needs no change here. The helpers:

- ``walk(node)``: pre-order iteration over every node (statements, expressions, regions, buffers).
- ``rewrite(node, fn)``: bottom-up rebuild; ``fn`` returns a replacement or None to keep the node.
- ``map_expr`` / ``map_exprs``: ``rewrite`` restricted to expressions; ``map_stmts``: a statement list
  rewrite in which one statement may become several (or none).
- ``substitute``, ``replace_buffers``, ``free_vars``, ``buffers_used``: the common queries built on these.

Two conventions come from the node definitions: a field named ``var`` or ``block_vars`` declares
variables (``For``, ``Let``, ``Launch``), and a buffer is declared by ``Alloc`` or a ``Func`` parameter;
everywhere else (``Load``, ``Store``, ``Region``) a ``Buffer`` is a reference to that declaration.
"""
from __future__ import annotations

import dataclasses
from functools import lru_cache
from typing import Callable, Iterator, Mapping, Optional, Union

from . import nodes as n

Node = Union[n.Expr, n.Stmt, n.Region, n.Buffer, n.Func, n.Module]
NODE_TYPES = (n.Expr, n.Stmt, n.Region, n.Buffer, n.Func, n.Module)
BINDING_FIELDS = frozenset(("var", "block_vars"))
_DECLARES_BUFFERS = (n.Alloc, n.Func)


@lru_cache(maxsize=None)
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls) if f.name != "loc")


def _child_nodes(value) -> list:
    if isinstance(value, NODE_TYPES):
        return [value]
    if isinstance(value, tuple):
        return [v for v in value if isinstance(v, NODE_TYPES)]
    return []


def children(node: Node) -> Iterator[tuple[str, Node]]:
    """The direct child nodes of ``node`` as ``(field name, child)`` pairs, in field order."""
    for fname in _field_names(type(node)):
        for child in _child_nodes(getattr(node, fname)):
            yield fname, child


def walk(node: Union[Node, n.Body]) -> Iterator[Node]:
    """Every node under ``node`` (itself first), pre-order, in field order; a body walks each statement.

    A buffer's shape is visited where the buffer is declared (``Alloc``, ``Func`` parameters, or when
    ``node`` is the buffer itself); at a use (``Load``, ``Store``, ``Region``) the buffer is yielded but
    not entered, so each shape expression is seen once.
    """
    roots = node if isinstance(node, tuple) else (node,)
    stack: list[tuple[Node, bool]] = [(r, True) for r in reversed(roots)]
    while stack:
        current, enter = stack.pop()
        yield current
        if not enter:
            continue
        declares = isinstance(current, _DECLARES_BUFFERS)
        kids = [(c, declares or not isinstance(c, n.Buffer)) for _, c in children(current)]
        stack.extend(reversed(kids))


def rewrite(node: Union[Node, n.Body], fn: Callable[[Node], Optional[Node]], *, buffers: bool = True,
            bindings: bool = True) -> Union[Node, n.Body]:
    """Rebuild ``node`` (or each statement of a body) bottom-up: children first, then ``fn`` on the
    rebuilt node.

    ``fn`` returns a replacement node or None to keep it. Nodes with no changed children are reused,
    not copied. ``buffers=False`` leaves every ``Buffer`` (and its shape) untouched; otherwise each
    distinct buffer is rebuilt once and every reference to it gets the same result. ``bindings=False``
    leaves declared variables (``For.var``, ``Let.var``, ``Launch.block_vars``) untouched.
    """
    memo: dict[n.Buffer, n.Buffer] = {}

    def visit(x):
        if isinstance(x, n.Buffer):
            if not buffers:
                return x
            if x not in memo:
                memo[x] = rebuild(x)
            return memo[x]
        return rebuild(x)

    def rebuild(x):
        changes = {}
        for fname in _field_names(type(x)):
            if not bindings and fname in BINDING_FIELDS:
                continue
            value = getattr(x, fname)
            if isinstance(value, NODE_TYPES):
                new = visit(value)
            elif isinstance(value, tuple) and any(isinstance(v, NODE_TYPES) for v in value):
                new = tuple(visit(v) if isinstance(v, NODE_TYPES) else v for v in value)
            else:
                continue
            if _changed_identity(new, value):
                changes[fname] = new
        if changes:
            x = dataclasses.replace(x, **changes)
        result = fn(x)
        return x if result is None else result

    if isinstance(node, tuple):
        new = tuple(visit(x) for x in node)
        return node if not _changed_identity(new, node) else new
    return visit(node)


def _changed_identity(new, old) -> bool:
    # Identity, not equality: a rewrite that changes only a location (not part of equality) is kept.
    if isinstance(new, tuple):
        return any(a is not b for a, b in zip(new, old))
    return new is not old


def map_expr(expr: n.Expr, fn: Callable[[n.Expr], Optional[n.Expr]]) -> n.Expr:
    """Rebuild an expression bottom-up with ``fn`` (None keeps a node); loaded buffers are left alone."""
    return rewrite(expr, lambda x: fn(x) if isinstance(x, n.Expr) else None, buffers=False,
                   bindings=False)


def map_exprs(node: Union[Node, n.Body], fn: Callable[[n.Expr], Optional[n.Expr]]) -> Node:
    """Apply ``map_expr(e, fn)`` to every expression in a statement, body, region or kernel.

    Buffer shapes and declared variables are left alone (use ``rewrite`` to change those).
    """
    return rewrite(node, lambda x: fn(x) if isinstance(x, n.Expr) else None, buffers=False,
                   bindings=False)


StmtResult = Union[None, n.Stmt, tuple, list]


def map_stmts(body: n.Body, fn: Callable[[n.Stmt], StmtResult]) -> n.Body:
    """Rewrite a statement list bottom-up: nested bodies first, then ``fn`` on each statement.

    ``fn`` returns None (keep), a statement (replace), or a sequence of statements (splice in; empty
    deletes).
    """
    out: list[n.Stmt] = []
    for stmt in body:
        changes = {}
        for fname in _field_names(type(stmt)):
            value = getattr(stmt, fname)
            if isinstance(value, tuple) and value and all(isinstance(v, n.Stmt) for v in value):
                new = map_stmts(value, fn)
                if len(new) != len(value) or _changed_identity(new, value):
                    changes[fname] = new
        if changes:
            stmt = dataclasses.replace(stmt, **changes)
        result = fn(stmt)
        if result is None:
            out.append(stmt)
        elif isinstance(result, n.Stmt):
            out.append(result)
        else:
            out.extend(result)
    return tuple(out)


def substitute(node: Union[Node, n.Body], mapping: Mapping[n.Var, n.Expr]) -> Node:
    """Replace each use of a variable in ``mapping`` by its expression (buffer shapes included)."""
    if not mapping:
        return node
    return rewrite(node, lambda x: mapping.get(x) if isinstance(x, n.Var) else None, bindings=False)


def replace_buffers(node: Union[Node, n.Body], mapping: Mapping[n.Buffer, n.Buffer]) -> Node:
    """Replace every declaration of and reference to a buffer in ``mapping``."""
    return rewrite(node, lambda x: mapping.get(x) if isinstance(x, n.Buffer) else None)


def bound_vars(node: Union[Node, n.Body]) -> list[n.Var]:
    """Variables declared under ``node`` (loop variables, block variables, lets), in order."""
    found: dict[n.Var, None] = {}
    for x in walk(node):
        for fname in BINDING_FIELDS.intersection(_field_names(type(x))):
            for v in _child_nodes(getattr(x, fname)):
                found[v] = None
    return list(found)


def free_vars(node: Union[Node, n.Body]) -> list[n.Var]:
    """Variables used under ``node`` that it does not declare, in order of first use.

    Symbolic dimensions of a kernel are free (they are bound from argument shapes at call time).
    """
    bound = set(bound_vars(node))
    found: dict[n.Var, None] = {}
    for x in walk(node):
        if isinstance(x, n.Var) and x not in bound:
            found[x] = None
    return list(found)


def buffers_used(node: Union[Node, n.Body]) -> list[n.Buffer]:
    """Buffers declared or referenced under ``node``, in order of first appearance."""
    found: dict[n.Buffer, None] = {}
    for x in walk(node):
        if isinstance(x, n.Buffer):
            found[x] = None
    return list(found)
