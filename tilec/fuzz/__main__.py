"""``python -m tilec.fuzz``: run N random programs on the passes and every available target.

Exit status 0 when nothing disagrees with the interpreter, 1 otherwise (each disagreement shrunk and, with
``--save``, written as ``<target>-<seed>.tir`` into the current directory, or ``--save-dir DIR``; a
checkout's regression suite is ``--save-dir tests/fuzz/regressions``, which tests/fuzz/test_regressions.py
runs). The current directory, not the package's folder: an installed tilec lives in site-packages.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .driver import fuzz



def save_directory(save: bool, save_dir: Path | None) -> Path | None:
    """Where shrunk disagreements go: ``--save-dir``, else the current directory with ``--save``, else nowhere."""
    if save_dir is not None:
        return save_dir
    return Path.cwd() if save else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tilec.fuzz", description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=200, help="number of programs (default 200)")
    p.add_argument("--seed", type=int, default=0, help="first program seed (programs use seed..seed+n-1)")
    p.add_argument("--targets", default=None,
                   help="comma-separated targets to run (default: every registered one but interp; "
                        "'none': only the pass pipeline)")
    p.add_argument("--no-passes", action="store_true", help="do not check the pass pipeline")
    p.add_argument("--after-passes", action=argparse.BooleanOptionalAction, default=True,
                   help="also run each target on the output of the pass pipeline (<target>+passes), the "
                        "kernel tilec.compile builds by default (default: on; --no-after-passes: only the "
                        "programs as generated)")
    p.add_argument("--no-shrink", action="store_true", help="report disagreements without shrinking")
    p.add_argument("--save", action="store_true",
                   help="save shrunk disagreements as <target>-<seed>.tir in the current directory")
    p.add_argument("--save-dir", type=Path, default=None,
                   help="save them in DIR instead (implies --save; a checkout's suite: tests/fuzz/regressions)")
    p.add_argument("--jobs", "-j", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--time-limit", type=float, default=None, help="stop after about S seconds")
    p.add_argument("--progress", type=int, default=100, metavar="K",
                   help="log the running counts every K programs (default 100)")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (it shows on a terminal only; TILEC_NO_PROGRESS=1 also hides it)")
    ns = p.parse_args(argv)
    from ..autotuner import progress_enabled
    names = [t for t in ns.targets.split(",") if t and t != "none"] if ns.targets else None
    save_dir = save_directory(ns.save, ns.save_dir)
    log = (lambda s: None) if ns.quiet else (lambda s: print(s, file=sys.stderr, flush=True))
    summary = fuzz(ns.n, ns.seed, names, passes=not ns.no_passes, shrink_findings=not ns.no_shrink,
                   save_dir=save_dir, log=log, time_limit=ns.time_limit, after_passes=ns.after_passes,
                   jobs=ns.jobs, progress=ns.progress, bar=progress_enabled(ns.quiet or ns.no_progress))
    print(summary.text())
    return 1 if summary.findings else 0


if __name__ == "__main__":
    sys.exit(main())
