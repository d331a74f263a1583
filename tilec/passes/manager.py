"""The pass manager: runs a target's ordered list of passes over a kernel, with the debugging aids.

A ``Pass`` is a name plus a function ``Func -> Func`` (docs/design.md, decision 1). Each target keeps its
pipeline as a plain list of passes and calls ``run_pipeline(func, passes, options)``. Options (from
``tilec.compile(..., **options)`` or the CLI):

- ``verify_each``: run the verifier after every pass (on in tests; also ``TILEC_VERIFY_EACH=1``). A pass
  whose output fails verification is a compiler bug and is reported as one.
- ``print_after_all`` / ``print_after`` (a pass name or a list of names): print the IR after those
  passes to stderr (``tilec ir --print-after-all``).
- ``TILEC_PASS_TIMING=1`` in the environment (or option ``pass_timing``): a per-pass timing table on
  stderr after the pipeline.

A pass that raises anything but a ``TilecError`` (the user's mistake, passed through) becomes an
``InternalError`` naming the pass, and the pass's input IR is written to ``tilec-crash-<pass>.tir`` in a
fresh temporary directory so the failure can be reproduced with one pass and one file.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional, TextIO

from ..errors import InternalError, TilecError
from ..ir import nodes
from ..ir.printer import print_func
from ..ir.verifier import verify

# How many pipelines this process has run: lets the CLI tell a user that a target ran none (so
# --print-after-all had nothing to print) instead of printing nothing silently.
pipelines_run = 0


@dataclass(frozen=True)
class Pass:
    """One named step of a pipeline: ``fn`` maps a ``Func`` to a new ``Func``."""
    name: str
    fn: Callable[[nodes.Func], nodes.Func]
    doc: str = ""

    def __call__(self, func: nodes.Func) -> nodes.Func:
        return self.fn(func)


def make_pass(name: str) -> Callable[[Callable[[nodes.Func], nodes.Func]], Pass]:
    """Decorator form: ``@make_pass("simplify") def simplify(func): ...`` gives a ``Pass``."""
    def wrap(fn: Callable[[nodes.Func], nodes.Func]) -> Pass:
        return Pass(name, fn, (fn.__doc__ or "").strip().split("\n")[0])
    return wrap


def _flag(options: dict[str, Any], key: str, env: str) -> bool:
    if key in options and options[key] is not None:
        return bool(options[key])
    return os.environ.get(env, "") not in ("", "0")


def _print_targets(options: dict[str, Any]) -> set[str]:
    value = options.get("print_after") or ()
    if isinstance(value, str):
        value = [v for v in value.split(",") if v]
    return set(value)


def ir_text(func: nodes.Func) -> str:
    """The printed IR of ``func``."""
    return print_func(func)


def write_repro(func: nodes.Func, pass_name: str) -> str:
    """Write ``func``'s IR to ``tilec-crash-<pass>.tir`` in a new temp dir; return the path ('' on failure)."""
    try:
        text = ir_text(func)
    except Exception as e:  # the printer itself failing must not hide the original error
        text = f"# the printer failed ({type(e).__name__}: {e}); repr follows\n# {func!r}\n"
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in pass_name)
    try:
        path = os.path.join(tempfile.mkdtemp(prefix="tilec-crash-"), f"tilec-crash-{safe}.tir")
        with open(path, "w") as f:
            f.write(text)
        return path
    except OSError:
        return ""


def _run_one(p: Pass, func: nodes.Func, verify_each: bool) -> nodes.Func:
    try:
        out = p.fn(func)
    except (TilecError, InternalError):
        raise
    except Exception as e:
        repro = write_repro(func, p.name)
        raise InternalError(f"{type(e).__name__}: {e}", p.name, repro) from e
    if not isinstance(out, nodes.Func):
        repro = write_repro(func, p.name)
        raise InternalError(f"the pass returned {type(out).__name__}, not a Func", p.name, repro)
    if verify_each:
        try:
            verify(out)
        except TilecError as e:
            repro = write_repro(func, p.name)
            raise InternalError(f"the pass produced invalid IR:\n{e.render()}", p.name, repro) from e
    return out


def run_pipeline(func: nodes.Func, passes: Iterable[Pass], options: Optional[dict[str, Any]] = None,
                 stream: Optional[TextIO] = None) -> nodes.Func:
    """Run ``passes`` in order over ``func`` and return the result; see the module docstring for options."""
    global pipelines_run
    pipelines_run += 1
    options = options or {}
    passes = list(passes)
    out = stream if stream is not None else sys.stderr
    verify_each = _flag(options, "verify_each", "TILEC_VERIFY_EACH")
    timing = _flag(options, "pass_timing", "TILEC_PASS_TIMING")
    print_all = bool(options.get("print_after_all"))
    wanted = _print_targets(options)
    unknown = wanted - {p.name for p in passes}
    if unknown and not options.get("print_after_lenient"):
        raise TilecError(f"--print-after names unknown pass(es) {', '.join(sorted(unknown))}; this "
                         f"pipeline has: {', '.join(p.name for p in passes) or '(no passes)'}")
    times: list[tuple[str, float]] = []
    for p in passes:
        start = time.perf_counter()
        func = _run_one(p, func, verify_each)
        times.append((p.name, time.perf_counter() - start))
        if print_all or p.name in wanted:
            out.write(f"// ----- IR after pass '{p.name}' -----\n{ir_text(func)}\n")
    if timing:
        out.write(timing_table(times))
    out.flush()
    return func


def timing_table(times: list[tuple[str, float]]) -> str:
    """A per-pass timing table: pass, milliseconds, share of the total."""
    total = sum(t for _, t in times) or 1e-12
    width = max([len("pass")] + [len(n) for n, _ in times])
    lines = [f"{'pass':<{width}}  {'ms':>9}  {'%':>5}"]
    for name, t in times:
        lines.append(f"{name:<{width}}  {t * 1e3:>9.3f}  {100 * t / total:>5.1f}")
    lines.append(f"{'total':<{width}}  {total * 1e3:>9.3f}  100.0")
    return "\n".join(lines) + "\n"
