"""Copy forwarding into ``T.gemm`` operands: which ``T.copy`` into a block-local tile may be skipped.

The DSL's GEMM moves each operand twice: ``T.copy(A[...], A_s)`` (global -> shared), then ``T.gemm``
packs ``A_s`` into the micro-kernel's panels (or reads it in place). On the CPU the middle step buys
nothing: the gemm's packing can read the copy's source directly. This analysis (run once per launch by
``FnCodegen``) finds the copies for which that is safe; the codegen then emits, for each such copy,

    inb = the source region lies inside its buffer     (runtime test; no zero fill is needed)
    if not inb: the copy as written                      (ragged edges keep the interpreter's zeros)

and each gemm that reads the tile takes its operand from the source region when ``inb`` holds, from
the tile otherwise (a select of base pointer and row stride, so the gemm's code is emitted once).

A tile S qualifies when every statement that mentions it is either
- a ``Copy`` that writes all of S (rank 2, both dimensions longer than one) from a region of another
  buffer with the same dtype, whose non-unit extents equal S's shape and whose last non-unit dimension is
  its buffer's last (so the gemm sees unit column strides), or
- a ``Gemm`` that reads all of S as its A or B operand,
and every such gemm is "fed": in the same statement list, the latest earlier statement that mentions S
is one of those copies, nothing in between writes that copy's source buffer, and the gemm does not
accumulate into it (it would read the operand while updating it). Then no one observes S
except fed gemms, which read the same values either way. Anything else keeps the plain copy.
"""
from __future__ import annotations

from tilec.ir import nodes as n
from tilec.passes import analysis

ENABLED = True  # tests and benchmarks turn it off to compare with plain copies (part of the cache key)


def _ints(exprs) -> list:
    out = []
    for e in exprs:
        out.append(int(e.value) if isinstance(e, n.Const) and not isinstance(e.value, float) else None)
    return out


def _whole(r: n.Region) -> bool:
    """The region covers its whole (constant-shaped) buffer."""
    shape, ext = _ints(r.buffer.shape), _ints(r.extents)
    return (None not in shape and ext == shape and all(_ints([s]) == [0] for s in r.starts))


def _tile(buf: n.Buffer) -> bool:
    shape = _ints(buf.shape)
    return buf.scope != "global" and len(shape) == 2 and None not in shape and min(shape) > 1


def _copy_ok(s: n.Copy) -> bool:
    """A copy whose destination a gemm could read from its source instead."""
    src, dst = s.src, s.dst
    if not (_tile(dst.buffer) and _whole(dst) and src.buffer != dst.buffer and src.buffer.dtype == dst.buffer.dtype):
        return False
    ext = _ints(src.extents)
    keep = [d for d, e in enumerate(ext) if e != 1]
    if len(keep) != 2 or [ext[d] for d in keep] != _ints(dst.buffer.shape):
        return False
    return keep[1] == len(ext) - 1  # unit column stride in the source as in the tile


def _bodies(s: n.Stmt):
    for f in ("body", "then_body", "else_body"):
        b = getattr(s, f, None)
        if isinstance(b, tuple):
            yield b


def _candidates(body: n.Body) -> set:
    """Tiles all of whose mentions are qualifying copies into them and gemm operand reads of them."""
    seen: dict = {}
    bad: set = set()

    def visit(stmts):
        for s in stmts:
            if isinstance(s, n.Copy) and _tile(s.dst.buffer):
                seen.setdefault(s.dst.buffer, True)
                if not _copy_ok(s):
                    bad.add(s.dst.buffer)
                bad.add(s.src.buffer)  # a tile read by a copy is not only a gemm operand
            elif isinstance(s, n.Gemm):
                for r in (s.a, s.b):
                    if _tile(r.buffer):
                        seen.setdefault(r.buffer, True)
                        if not _whole(r):
                            bad.add(r.buffer)
                bad.add(s.c.buffer)
            elif isinstance(s, (n.For, n.While, n.If)):
                bad.update(analysis.reads(_header(s)) | analysis.writes(_header(s)))
                for b in _bodies(s):
                    visit(b)
            else:
                bad.update(analysis.reads(s) | analysis.writes(s))
    visit(body)
    return {b for b in seen if b not in bad}


def _header(s: n.Stmt):
    """The expressions a compound statement evaluates itself (its bounds or condition)."""
    return tuple(getattr(s, f) for f in ("start", "stop", "cond") if isinstance(getattr(s, f, None), n.Expr))


def plan(body: n.Body) -> set:
    """ids of the ``Copy`` statements of a launch body whose destination tile the gemms read forwarded."""
    if not ENABLED:
        return set()
    cands = _candidates(body)
    forwarded: dict = {}  # id(copy) -> its tile
    unfed: set = set()

    def scan(stmts):
        pending: dict = {}  # tile -> the copy that last wrote it in this list
        for s in stmts:
            if isinstance(s, n.Copy) and s.dst.buffer in cands:
                pending[s.dst.buffer] = s
                continue
            if isinstance(s, n.Gemm):
                for r in (s.a, s.b):
                    if r.buffer in cands:
                        if r.buffer in pending and pending[r.buffer].src.buffer != s.c.buffer:
                            forwarded[id(pending[r.buffer])] = r.buffer
                        else:
                            unfed.add(r.buffer)
            else:
                for b in _bodies(s):
                    scan(b)
            written = analysis.writes(s)
            for t, c in list(pending.items()):
                if t in written or c.src.buffer in written:
                    del pending[t]  # t was rewritten in a nested body, or its copy's source changed
    scan(body)
    return {i for i, tile in forwarded.items() if tile not in unfed}
