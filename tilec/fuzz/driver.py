"""The fuzz driver: run generated programs on every target and compare each with the interpreter.

For each program (``generator.generate(seed)``) the interpreter's result on seeded random inputs is the
reference. The program then runs through the target-independent pass pipeline (``registry.DEFAULT``)
and must interpret to bit-identical results; and on every registered target whose ``available()`` holds:
host targets (numpy arrays) build and run and compare under the dtype tolerances of
``check_semantics.tolerance``, ``cuda`` (torch arrays) is compiled only. A target rejecting a program
with a ``TilecError`` is counted as "rejected" (a feature it does not support), not as a disagreement;
any other exception is a crash, which is one. A disagreement is shrunk (``shrink.shrink``) and can be
saved as a regression test.
"""
from __future__ import annotations

import multiprocessing
import os
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

import numpy as np

from .. import targets as target_registry
from ..errors import TilecError
from ..ir import nodes as n
from ..passes import registry
from ..passes.check_semantics import as_float64, check_pipeline, compare, random_args, run_interp
from ..passes.manager import run_pipeline
from .generator import generate

PASSES = "passes"   # the pseudo-target name of the pass pipeline run on the interpreter
ISOLATE = True      # run targets in a forked child (a segfault is a finding, not the end of the run)
CHILD_TIMEOUT_S = 300


@dataclass
class Outcome:
    target: str
    status: str          # agree | disagree | crash | rejected | compiled | invalid
    detail: str = ""

    @property
    def bad(self) -> bool:
        return self.status in ("disagree", "crash")


@dataclass
class Finding:
    """A program on which a target and the interpreter disagree."""
    seed: int
    target: str
    detail: str
    func: n.Func
    dims: dict[str, int]
    shrunk: Optional[n.Func] = None
    saved: Optional[Path] = None


@dataclass
class Summary:
    programs: int = 0
    counts: dict[str, Counter] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    skipped_targets: dict[str, str] = field(default_factory=dict)
    rejections: dict[str, Counter] = field(default_factory=dict)   # target -> reason -> count
    seconds: float = 0.0

    def add(self, o: Outcome) -> None:
        self.counts.setdefault(o.target, Counter())[o.status] += 1
        if o.status == "rejected":
            self.rejections.setdefault(o.target, Counter())[o.detail[:160]] += 1

    def text(self) -> str:
        lines = [f"{self.programs} programs in {self.seconds:.1f} s"]
        for t, cnt in self.counts.items():
            lines.append(f"  {t:12s} " + ", ".join(f"{k} {v}" for k, v in sorted(cnt.items())))
        for t, reasons in self.rejections.items():
            for why, k in reasons.most_common(3):
                lines.append(f"  {t:12s} rejected {k}x: {why}")
        for t, why in self.skipped_targets.items():
            lines.append(f"  {t:12s} skipped: {why}")
        for fd in self.findings:
            where = f" -> {fd.saved}" if fd.saved else ""
            lines.append(f"  DISAGREEMENT seed {fd.seed} on {fd.target}: {fd.detail}{where}")
        return "\n".join(lines)


def usable_targets(names: Optional[Iterable[str]] = None) -> tuple[dict, dict[str, str]]:
    """(name -> target object, name -> why skipped) over the registered targets but ``interp``.

    A target that cannot run here but can build (``cuda`` with nvcc and no GPU) is usable: its
    programs are compiled only (outcome ``compiled``)."""
    wanted = list(names) if names is not None else target_registry.names()
    found, skipped = {}, {}
    for name in wanted:
        if name == "interp":
            continue
        try:
            t = target_registry.get(name)
            ok, why = t.available()
            if not ok and getattr(t, "array_kind", "numpy") != "numpy":
                ok, why = _builds_here(name, t, why)
        except Exception as e:   # a backend that fails to import is skipped, with the reason
            ok, why = False, f"{type(e).__name__}: {e}"
        if ok:
            found[name] = t
        else:
            skipped[name] = why or "not available"
    return found, skipped


_BUILDS: dict[str, tuple[bool, str]] = {}   # target name -> (can build here, why not), probed once


def _builds_here(name: str, target, why_not_run: str) -> tuple[bool, str]:
    """Whether a device target (torch arrays) can at least compile here: build a one-copy kernel once."""
    if name not in _BUILDS:
        x = n.Buffer("X", (n.Const(64),), "float32", "global")
        y = n.Buffer("Y", (n.Const(64),), "float32", "global")
        body = (n.Copy(n.Region(x, (n.Const(0),), (n.Const(64),)), n.Region(y, (n.Const(0),), (n.Const(64),))),)
        probe = n.Func("fuzz_probe", (x, y), (n.Launch((n.Const(1),), (n.Var("bx"),), 128, body),))
        try:
            target.build(probe, {})
            _BUILDS[name] = (True, "")
        except Exception as e:   # noqa: BLE001 - the reason is reported as why the target is skipped
            _BUILDS[name] = (False, f"{why_not_run}; cannot compile either: {str(e).splitlines()[0]}")
    return _BUILDS[name]


def _reference(func: n.Func, dims: dict, seed: int) -> tuple[list, list]:
    args = random_args(func, dims, seed)
    return args, run_interp(func, args, dims)


def _finite(func: n.Func, ref: list) -> bool:
    return all(np.isfinite(as_float64(r, p.dtype)).all() for r, p in zip(ref, func.params))


def check_passes(func: n.Func, dims: dict, seed: int, args: list, ref: list) -> Outcome:
    try:
        out = run_pipeline(func, registry.pipeline(registry.DEFAULT), {"verify_each": True})
        why = compare(func, ref, run_interp(out, args, dims), exact=True)
    except Exception as e:
        return Outcome(PASSES, "crash", f"{type(e).__name__}: {e}")
    if why is None:
        return Outcome(PASSES, "agree")
    check = check_pipeline(func, registry.pipeline(registry.DEFAULT), dims, seed, exact=True)
    return Outcome(PASSES, "disagree", f"pass '{check.first_bad}': {check.detail or why}")


def check_target(name: str, target, func: n.Func, dims: dict, args: list, ref: list,
                 isolate: Optional[bool] = None) -> Outcome:
    """Build and run ``func`` on one target and compare with ``ref``. With ``isolate`` (default
    ``ISOLATE``) this happens in a forked child, so a target that segfaults or hangs is reported as a
    crash instead of ending the fuzz run."""
    if not (ISOLATE if isolate is None else isolate) or not hasattr(os, "fork"):
        return _check_target_here(name, target, func, dims, args, ref)
    ctx = multiprocessing.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child, args=(send, name, target, func, dims, args, ref))
    child.start()
    send.close()
    try:
        if recv.poll(CHILD_TIMEOUT_S):
            return recv.recv()
        return Outcome(name, "crash", f"no result within {CHILD_TIMEOUT_S} s (hang?)")
    except EOFError:
        child.join()
        return Outcome(name, "crash", f"the target killed the process (exit code {child.exitcode})")
    finally:
        if child.is_alive():
            child.kill()
        child.join()
        recv.close()


def _child(send, *args) -> None:
    try:
        send.send(_check_target_here(*args))
    except BaseException as e:   # anything at all: report it rather than die silently
        send.send(Outcome(args[0], "crash", f"{type(e).__name__}: {e}"))
    send.close()
    os._exit(0)   # skip atexit handlers and thread-pool joins inherited from the parent


def _check_target_here(name: str, target, func: n.Func, dims: dict, args: list, ref: list) -> Outcome:
    try:
        exe = target.build(func, {})
    except TilecError as e:
        return Outcome(name, "rejected", str(e).split("\n")[0])
    except Exception as e:
        return Outcome(name, "crash", f"build: {type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}")
    if getattr(target, "array_kind", "numpy") != "numpy":
        return Outcome(name, "compiled")
    got = [np.array(a, copy=True) for a in args]
    try:
        exe.run(got, dict(dims))
    except Exception as e:
        return Outcome(name, "crash", f"run: {type(e).__name__}: {e}")
    why = compare(func, ref, got)
    return Outcome(name, "agree") if why is None else Outcome(name, "disagree", why)


def check_program(func: n.Func, dims: dict, seed: int, targets: dict, passes: bool = True,
                  after_passes: bool = False) -> list[Outcome]:
    """Outcomes of one program on the pass pipeline and each target (``invalid`` when the reference
    itself is not finite: a generator bug, reported rather than compared). ``after_passes`` also runs
    each target on the pipeline's output (outcomes named ``<target>+passes``)."""
    try:
        args, ref = _reference(func, dims, seed)
    except TilecError as e:
        return [Outcome("interp", "invalid", str(e))]
    if not _finite(func, ref):
        return [Outcome("interp", "invalid", "the reference holds NaN or inf")]
    outcomes = [check_passes(func, dims, seed, args, ref)] if passes else []
    for name, t in targets.items():
        outcomes.append(check_target(name, t, func, dims, args, ref))
    if after_passes and targets:
        optimized = run_pipeline(func, registry.pipeline(registry.DEFAULT), {})
        for name, t in targets.items():
            o = check_target(name, t, optimized, dims, args, ref)
            outcomes.append(Outcome(f"{name}+passes", o.status, o.detail))
    return outcomes


def still_fails(target_name: str, targets: dict, dims: dict, seed: int,
                status: Optional[str] = None) -> Callable[[n.Func], bool]:
    """The shrinker's predicate: the program still makes ``target_name`` disagree with the interpreter
    (with ``status``, in the same way: a crash must stay a crash, not drift into another failure)."""
    def check(func: n.Func) -> bool:
        try:
            args, ref = _reference(func, dims, seed)
        except TilecError:
            return False
        if not _finite(func, ref):   # reads memory nothing wrote: not a well-defined program any more
            return False
        if target_name == PASSES:
            o = check_passes(func, dims, seed, args, ref)
        else:
            name, _, optimized = target_name.partition("+")
            if optimized:
                func = run_pipeline(func, registry.pipeline(registry.DEFAULT), {})
            o = check_target(name, targets[name], func, dims, args, ref)
        return o.bad and (status is None or o.status == status)
    return check


def _check_seed(seed: int, target_names: list[str], passes: bool, after_passes: bool) -> list[Outcome]:
    """One program's outcomes (top level, so worker processes can run it)."""
    targets, _ = usable_targets(target_names)
    prog = generate(seed)
    return check_program(prog.func, prog.dims, seed, targets, passes, after_passes)


def _all_outcomes(seeds: range, target_names: list[str], passes: bool, after_passes: bool,
                  jobs: int) -> Iterator[tuple[int, list[Outcome]]]:
    if jobs <= 1:
        for s in seeds:
            yield s, _check_seed(s, target_names, passes, after_passes)
        return
    pool = ProcessPoolExecutor(jobs)
    try:
        n = len(seeds)
        results = pool.map(_check_seed, seeds, [target_names] * n, [passes] * n, [after_passes] * n,
                           chunksize=2)
        yield from zip(seeds, results)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def fuzz(count: int, seed: int = 0, target_names: Optional[Iterable[str]] = None, passes: bool = True,
         shrink_findings: bool = True, save_dir: Optional[Path] = None,
         log: Callable[[str], None] = lambda s: None, time_limit: Optional[float] = None,
         after_passes: bool = False, jobs: int = 1, progress: int = 100, bar: bool = False) -> Summary:
    """Check the programs of seeds ``seed .. seed + count - 1`` (on ``jobs`` processes); shrink and
    save what disagrees (in this process, one finding at a time). ``bar``: a tqdm progress bar on stderr."""
    from ..autotuner import progress as progress_bar
    from .shrink import save_regression, shrink
    start = time.perf_counter()
    targets, skipped = usable_targets(target_names)
    summary = Summary(skipped_targets=skipped)
    pbar = progress_bar(total=count, desc="fuzz", enabled=bar)
    for s, outcomes in _all_outcomes(range(seed, seed + count), list(targets), passes, after_passes, jobs):
        summary.programs += 1
        pbar.update(1)
        pbar.set_postfix(disagreements=len(summary.findings), refresh=False)
        for o in outcomes:
            summary.add(o)
            if not o.bad:
                continue
            prog = generate(s)
            fd = Finding(s, o.target, o.detail.split("\n")[0], prog.func, prog.dims)
            log(f"seed {s}: {o.target} disagrees: {fd.detail}")
            if shrink_findings:
                fd.shrunk = shrink(prog.func, still_fails(o.target, targets, prog.dims, s, o.status))
                if save_dir is not None:
                    fd.saved = save_regression(fd, save_dir)
            summary.findings.append(fd)
        if progress and summary.programs % progress == 0:
            counts = "; ".join(f"{t} " + ",".join(f"{k} {v}" for k, v in sorted(c.items()))
                               for t, c in summary.counts.items())
            log(f"{summary.programs} programs, {len(summary.findings)} disagreements, "
                f"{time.perf_counter() - start:.0f} s: {counts}")
        if time_limit is not None and time.perf_counter() - start > time_limit:
            log(f"time limit reached after {summary.programs} programs")
            break
    pbar.close()
    summary.seconds = time.perf_counter() - start
    return summary
