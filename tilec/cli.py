"""The ``tilec`` command: show a kernel's IR, compile it to a folder, run and check it, list targets.

``tilec ir`` prints the Tile IR of a Python kernel or a ``.tir`` file; ``tilec compile`` writes the IR,
the generated source, the binary and a manifest to a folder; ``tilec run`` runs kernels on random inputs
and with ``--check`` compares them against the file's torch ``reference()`` (``make demo`` is ``tilec
run examples/*.py --check``); ``tilec targets`` lists the targets. The loading of files lives in
``tilec.runtime.loader``, the running and checking in ``tilec.runtime.check``.

Exit codes: 0 success; 1 a --check over its tolerance; 2 the user's mistake (a TilecError, printed as
``file:line:col`` with the source line, never a traceback), a missing file or a bad argument; 3 an
internal compiler error.
"""
from __future__ import annotations

import argparse
import sys
import traceback
from typing import Any, Optional, Sequence

from .errors import InternalError, TilecError

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USER_ERROR, EXIT_INTERNAL = 0, 1, 2, 3

_IR_HELP = """\
examples:
  tilec ir examples/gemm.py                       # the kernel KERNEL builds with DEFAULTS
  tilec ir examples/gemm.py --arg M=256 --arg dtype=bfloat16
  tilec ir examples/gemm.py > g.tir && tilec ir g.tir   # the text form reads back to the same IR
  cat g.tir | tilec ir -                          # IR text on stdin
  tilec ir examples/gemm.py --target cpu --print-after-all   # IR after each of cpu's passes (stderr)
  tilec ir examples/gemm.py --target cpu --print-after=NAME  # ... after one pass only
"""

_COMPILE_HELP = """\
examples:
  tilec compile examples/gemm.py --target cpu -o out/gemm
      writes out/gemm/main.tir (IR), main.ll (generated source), main.so (binary, when the target
      makes one) and manifest.json (signature, files, sha256), all at once or not at all
  tilec compile examples/softmax.py --arg M=4096 --target cuda -o out/softmax
  tilec compile kernel.tir --kernel main --target ascend -o out/k
"""

_RUN_HELP = """\
examples:
  tilec run examples/gemm.py                        # best target here, random inputs, timing
  tilec run examples/flash_attention.py --target interp --check
      compares against the file's reference(); prints the relative error; exits 1 over TOLERANCE
  tilec run examples/gemm.py --arg M=1000 --arg N=1000 --arg K=1000 --check --seed 3
  tilec run examples/*.py --check                   # several files: a summary table (make demo)
  tilec run kernel.tir --arg M=128 --out-idx 2      # a .tir kernel; --arg sizes its symbolic dims
"""

_BENCH_HELP = """\
examples:
  tilec bench examples/gemm.py --target cpu           # tilec vs the file's torch reference, checked
  tilec bench examples/*.py --target cpu --plot bench.png --json bench.json
  tilec bench examples/gemm.py --target cpu --autotune --plot gemm.png   # + the configs() landscape
"""

_TARGETS_HELP = """\
examples:
  tilec targets        # every registered target, whether it can run here, and why not
"""

_CACHE_HELP = """\
examples:
  tilec cache info                 # folder, entries, total size, limit (per backend)
  tilec cache clear                # remove every entry
  tilec cache clear --backend cpu  # only the cpu target's entries
  TILEC_CACHE_MAX=500M tilec run examples/gemm.py   # bound the cache to 500 MiB (default 2G)
"""


def _add_kernel_args(p: argparse.ArgumentParser, many: bool = False) -> None:
    if many:
        p.add_argument("files", nargs="+", metavar="FILE", help="kernel files: .py or .tir")
    else:
        p.add_argument("file", metavar="FILE", help="a .py kernel file, a .tir IR file, or - for IR on stdin")
    p.add_argument("--kernel", metavar="NAME",
                   help="the factory or @T.prim_func to use (default: KERNEL, or the only kernel)")
    p.add_argument("--arg", action="append", default=[], metavar="K=V",
                   help="override a factory argument (a Python literal; repeatable); in a .tir file: "
                        "the size of symbolic dimension K")


def _add_pipeline_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--print-after-all", action="store_true", help="print the IR after every pass (stderr)")
    p.add_argument("--print-after", action="append", default=[], metavar="PASS",
                   help="print the IR after pass PASS (stderr; repeatable)")
    p.add_argument("--passes", metavar="LIST",
                   help="the tile passes to run before the target: 'default', a list such as simplify,fuse, "
                        "or 'none' (default: the target's own choice; cpu, ascend and cuda run 'default')")
    p.add_argument("--check-semantics", action="store_true",
                   help="interpret before and after each tile pass; name the first that changes results")


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="tilec", formatter_class=fmt,
        description="tilec: a tile-level kernel language (TileLang dialect) and compiler.",
        epilog="run 'tilec COMMAND --help' for examples of each command")
    parser.add_argument("--version", action="version", version=f"tilec {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("ir", help="print a kernel's Tile IR", epilog=_IR_HELP, formatter_class=fmt,
                       description="Print the Tile IR of a kernel (verified unless --no-verify).")
    _add_kernel_args(p)
    p.add_argument("--target", metavar="T", help="also build for target T (with --print-after*)")
    p.add_argument("--no-verify", action="store_true", help="print even IR the verifier rejects")
    p.add_argument("--no-locs", action="store_true", help="leave out the '# file:line:col' comments")
    _add_pipeline_args(p)
    p.set_defaults(handler=cmd_ir)

    p = sub.add_parser("compile", help="compile a kernel into a folder", epilog=_COMPILE_HELP,
                       formatter_class=fmt, description="Compile a kernel and write its artifacts to DIR.")
    _add_kernel_args(p)
    p.add_argument("--target", default="auto", metavar="T", help="target (default: auto, the best here)")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")
    p.add_argument("--out-idx", metavar="I[,J]", help="output parameters (default: the file's OUT_IDX)")
    _add_racecheck_arg(p)
    _add_pipeline_args(p)
    p.set_defaults(handler=cmd_compile)

    p = sub.add_parser("run", help="run kernels on random inputs, optionally checked", epilog=_RUN_HELP,
                       formatter_class=fmt,
                       description="Run kernels on random inputs; --check compares with reference().")
    _add_kernel_args(p, many=True)
    p.add_argument("--target", default="auto", metavar="T", help="target (default: auto, the best here)")
    p.add_argument("--check", action="store_true", help="compare against reference(); exit 1 over TOLERANCE")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="random seed for the inputs (default 0)")
    p.add_argument("--out-idx", metavar="I[,J]",
                   help="output parameters (default: the file's OUT_IDX, else the last parameter)")
    _add_racecheck_arg(p)
    _add_pipeline_args(p)
    p.set_defaults(handler=cmd_run)

    p = sub.add_parser("bench", help="time kernels against their reference, optionally autotuned and plotted",
                       epilog=_BENCH_HELP, formatter_class=fmt,
                       description="Time kernels (checked) beside the file's torch reference().")
    _add_kernel_args(p, many=True)
    p.add_argument("--target", default="auto", metavar="T", help="target (default: auto, the best here)")
    p.add_argument("--plot", metavar="PNG", help="save a figure (needs matplotlib: pip install tilec[plot])")
    p.add_argument("--json", metavar="PATH", help="write the results here")
    p.add_argument("--autotune", action="store_true", help="also tune the file's configs() space")
    p.add_argument("--warmup", type=float, default=25, metavar="MS", help="warm-up budget per case (ms)")
    p.add_argument("--rep", type=float, default=100, metavar="MS", help="timing budget per case (ms)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (shown on a terminal only)")
    p.set_defaults(handler=cmd_bench)

    p = sub.add_parser("targets", help="list targets and whether they run here", epilog=_TARGETS_HELP,
                       formatter_class=fmt, description="List the registered targets.")
    p.set_defaults(handler=cmd_targets)

    p = sub.add_parser("cache", help="show or empty the compile cache", epilog=_CACHE_HELP, formatter_class=fmt,
                       description="The on-disk compile cache ($TILEC_CACHE_DIR, bounded by $TILEC_CACHE_MAX).")
    csub = p.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    csub.add_parser("info", help="folder, entries, total size and limit").set_defaults(handler=cmd_cache_info)
    c = csub.add_parser("clear", help="remove every entry")
    c.add_argument("--backend", metavar="NAME", help="only this backend's folder (e.g. cpu, cuda)")
    c.set_defaults(handler=cmd_cache_clear)

    from .models.deepseek_v32.cli import register as register_model  # `tilec model ...`
    register_model(sub)
    return parser


def _version() -> str:
    from .version import __version__
    return __version__


def _parse_out_idx(text: Optional[str]) -> Optional[list[int]]:
    if text is None:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise TilecError(f"--out-idx '{text}': expected parameter indices such as 2 or 2,3 or -1") from None


def _pipeline_options(ns: argparse.Namespace) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    if ns.print_after_all:
        opts["print_after_all"] = True
    if ns.print_after:
        opts["print_after"] = list(ns.print_after)
    if ns.passes:
        opts["passes"] = ns.passes
    if ns.check_semantics:
        opts["check_semantics"] = True
    return opts


def _add_racecheck_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--racecheck", action="store_true",
                   help="cuda-emu only: report shared-memory races and out-of-bounds accesses as errors")


def _racecheck_options(ns: argparse.Namespace) -> dict[str, Any]:
    """``{"racecheck": True}`` for ``--racecheck``; a TilecError when the target is not cuda-emu."""
    if not ns.racecheck:
        return {}
    from .runtime.kernel import resolve_target
    name = resolve_target(ns.target, require_available=False).name
    if name != "cuda-emu":
        raise TilecError(f"--racecheck needs --target cuda-emu (the race checker is part of the CUDA emulator); "
                         f"the target is {name}")
    return {"racecheck": True}


def _single(loaded: Any, ns: argparse.Namespace) -> None:
    if len(loaded.funcs) > 1 and ns.kernel is None:
        names = ", ".join(f.name for f in loaded.funcs)
        raise TilecError(f"'{loaded.path}' holds several kernels ({names}); choose one with --kernel NAME")


def cmd_ir(ns: argparse.Namespace) -> int:
    from .ir import nodes
    from .ir.printer import print_func, print_module
    from .runtime.kernel import compile, verify
    from .runtime.loader import load
    loaded = load(ns.file, ns.kernel, ns.arg)
    funcs = loaded.funcs if (len(loaded.funcs) > 1 and ns.kernel is None) else (loaded.func,)
    if not ns.no_verify:
        for f in funcs:
            verify(f)
    locs = not ns.no_locs
    if len(funcs) > 1:
        text = print_module(nodes.Module(tuple(funcs)), locs=locs)
    else:
        text = print_func(loaded.func, locs=locs)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()
    opts = _pipeline_options(ns)
    if ns.target or opts:
        from .passes import manager
        before = manager.pipelines_run
        for f in funcs:
            kernel = compile(f, target=ns.target or "auto", **opts)
        if opts and manager.pipelines_run == before:
            print(f"note: target '{kernel.target.name}' ran no pass pipeline, so there is no IR to print "
                  f"after a pass", file=sys.stderr)
    return EXIT_OK


def cmd_compile(ns: argparse.Namespace) -> int:
    from .ir.printer import print_func
    from .runtime.artifacts import write_output_dir
    from .runtime.kernel import compile
    from .runtime.loader import load
    loaded = load(ns.file, ns.kernel, ns.arg)
    _single(loaded, ns)
    out_idx = _parse_out_idx(ns.out_idx)
    if out_idx is None:
        out_idx = loaded.out_idx
    kernel = compile(loaded.func, out_idx=out_idx, target=ns.target, **_pipeline_options(ns),
                     **_racecheck_options(ns))
    man = write_output_dir(ns.output, kernel, print_func(loaded.func), loaded.path, loaded.params)
    files = ", ".join(list(man["files"].values()) + ["manifest.json"])
    print(f"{loaded.label} for {kernel.target.name}: wrote {ns.output}/ ({files})")
    return EXIT_OK


def _fmt_time(s: float) -> str:
    return f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


def _report(path: str, result: Any, check: bool) -> None:
    print(f"{path}: {result.label} on {result.target}: compile {_fmt_time(result.compile_s)}, "
          f"run {_fmt_time(result.run_s)}")
    for name, err in result.errors:
        ok = "ok" if err <= (result.tolerance or 0) else "FAILED"
        print(f"  {name}: relative error {err:.3e} (tolerance {result.tolerance:.0e}) {ok}")
    sys.stdout.flush()


def cmd_run(ns: argparse.Namespace) -> int:
    from .runtime.check import run_loaded
    from .runtime.loader import load
    out_idx = _parse_out_idx(ns.out_idx)
    opts = {**_pipeline_options(ns), **_racecheck_options(ns)}
    rows: list[tuple[str, str, str, str, str, str]] = []
    status = EXIT_OK
    for path in ns.files:
        try:
            loaded = load(path, ns.kernel, ns.arg)
            _single(loaded, ns)
            result = run_loaded(loaded, ns.target, ns.check, ns.seed, out_idx, opts)
        except Exception as e:  # one broken example must not hide the others' results
            if len(ns.files) == 1:
                raise
            _print_failure(path, e)
            rows.append((path, ns.target, "-", "-", "-", _failure_word(e)))
            status = max(status, EXIT_USER_ERROR if isinstance(e, TilecError) else EXIT_INTERNAL)
            continue
        _report(path, result, ns.check)
        passed = result.passed
        err = f"{result.max_error:.2e}" if result.max_error is not None else "-"
        verdict = ("ok" if passed else "FAILED") if ns.check else "ran"
        rows.append((path, result.target, _fmt_time(result.compile_s), _fmt_time(result.run_s), err, verdict))
        if not passed and status == EXIT_OK:
            status = EXIT_CHECK_FAILED
    if len(ns.files) > 1:
        print()
        print(_table(("example", "target", "compile", "run", "rel.err", "result"), rows))
    return status


def _failure_word(e: BaseException) -> str:
    if isinstance(e, TilecError):
        return "error"
    if isinstance(e, InternalError):
        return "internal error"
    return f"crash ({type(e).__name__})"


def _print_failure(path: str, e: BaseException) -> None:
    if isinstance(e, TilecError):
        print(f"{path}: {e.render()}", file=sys.stderr)
    elif isinstance(e, InternalError):
        print(f"{path}: {e}", file=sys.stderr)
    else:
        print(f"{path}: crashed:", file=sys.stderr)
        traceback.print_exception(e, file=sys.stderr)
    sys.stderr.flush()


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *[line(r) for r in rows]])


def cmd_bench(ns: argparse.Namespace) -> int:
    from .autotuner import progress_enabled
    from .autotuner.bench import run_bench
    return run_bench(ns.files, ns.target, ns.kernel, ns.arg, ns.warmup, ns.rep, ns.autotune, ns.plot, ns.json,
                     bar=progress_enabled(ns.no_progress))


def cmd_targets(ns: argparse.Namespace) -> int:
    from . import targets
    rows = []
    for name in targets.names():
        try:
            t = targets.get(name)
            ok, why = t.available()
            rows.append((name, "yes" if ok else "no", t.description if ok else why))
        except Exception as e:  # a backend that fails to import is listed, not fatal
            rows.append((name, "no", f"failed to load: {type(e).__name__}: {e}"))
    print(_table(("target", "available", "notes"), rows))
    return EXIT_OK


def cmd_cache_info(ns: argparse.Namespace) -> int:
    from .runtime import cache
    i = cache.info()
    print(f"dir:     {i.root}")
    print(f"entries: {i.entries}")
    print(f"size:    {cache.format_size(i.size)} ({i.size} bytes)")
    print(f"limit:   {cache.format_size(i.limit)}" + (f" ({i.limit} bytes)" if i.limit is not None else ""))
    if i.by_backend:
        rows = [(b, n, cache.format_size(size)) for b, (n, size) in i.by_backend.items()]
        print(_table(("backend", "entries", "size"), rows))
    return EXIT_OK


def cmd_cache_clear(ns: argparse.Namespace) -> int:
    from .runtime import cache
    n = cache.clear(ns.backend)
    print(f"removed {n} entr{'y' if n == 1 else 'ies'} from {cache.cache_root()}")
    return EXIT_OK


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``tilec`` console script; returns the exit code."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    try:
        return ns.handler(ns)
    except TilecError as e:
        print(e.render(), file=sys.stderr)
        return EXIT_USER_ERROR
    except InternalError as e:
        print(str(e), file=sys.stderr)
        return EXIT_INTERNAL
    except ModuleNotFoundError as e:   # an optional extra (torch, tokenizers, ...) is not installed
        from .errors import EXTRAS, missing_extra
        if (e.name or "").split(".")[0] not in EXTRAS:
            raise
        extra = "model" if ns.command == "model" else ""   # the model extra brings torch too
        print(missing_extra(e.name, f"tilec {ns.command}", extra).render(), file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
