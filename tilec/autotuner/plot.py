"""Figures for ``tilec bench --plot`` and the benchmarks' ``--plot`` (matplotlib, the ``[plot]`` extra).

Two kinds, saved as PNG: ``cases`` (per case, tilec's time beside each peer's, as grouped bars on a log
scale, with tilec's speed-up over the first peer written above its bar) and ``landscape`` (one autotune
run: every config's latency, fastest first, the winner marked, skipped configs listed with their reason).
``save_figure`` puts either or both in one PNG. Without matplotlib a TilecError names
``pip install tilec[plot]``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

from ..errors import TilecError, require


def require_matplotlib() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (no display needed), or a clear TilecError."""
    matplotlib = require("matplotlib", "plotting")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_cases(ax: Any, cases: Sequence[dict[str, Any]], title: str = "") -> None:
    """Grouped bars: one group per case (``{"case": str, "times": {"tilec": ms, "torch": ms, ...}}``)."""
    names: list[str] = []
    for c in cases:
        for n in c["times"]:
            if n not in names:
                names.append(n)
    width = 0.8 / max(1, len(names))
    for j, name in enumerate(names):
        xs = [i + (j - (len(names) - 1) / 2) * width for i in range(len(cases))]
        ys = [c["times"].get(name) for c in cases]
        pts = [(x, y) for x, y in zip(xs, ys) if y]
        if pts:
            ax.bar([p[0] for p in pts], [p[1] for p in pts], width, label=name)
    if names and names[0] == "tilec" and len(names) > 1:
        for i, c in enumerate(cases):
            mine, peer = c["times"].get("tilec"), c["times"].get(names[1])
            if mine and peer:
                ax.annotate(f"x{peer / mine:.2f}", (i - (len(names) - 1) / 2 * width, mine),
                            ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(cases)))
    ax.set_xticklabels([c["case"] for c in cases], rotation=30, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("ms per call (log)")
    ax.set_title(title or "tilec vs peers")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)


def _label(config: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in config.items())


def plot_landscape(ax: Any, trials: Sequence[Any], title: str = "", best: Optional[dict[str, Any]] = None) -> None:
    """Every timed config's latency (fastest first; the winner in another colour), skipped ones noted."""
    rows = [t if isinstance(t, dict) else t.as_json() for t in trials]
    ok = sorted((r for r in rows if r.get("latency") is not None), key=lambda r: r["latency"])
    bad = [r for r in rows if r.get("skipped")]
    colors = ["tab:orange" if best is not None and r["config"] == best else "tab:blue" for r in ok]
    ax.bar(range(len(ok)), [r["latency"] for r in ok], color=colors)
    ax.set_xticks(range(len(ok)))
    ax.set_xticklabels([_label(r["config"]) for r in ok], rotation=60, ha="right", fontsize=6)
    ax.set_ylabel("ms per call")
    sub = f" ({len(bad)} skipped)" if bad else ""
    ax.set_title((title or "autotune landscape") + sub)
    ax.grid(axis="y", alpha=0.3)
    if bad:
        text = "\n".join(f"skipped {_label(r['config'])}: {r['skipped'][:60]}" for r in bad[:6])
        ax.text(0.01, 0.98, text, transform=ax.transAxes, va="top", fontsize=6, family="monospace")


def save_figure(path: str | Path, cases: Optional[Sequence[dict[str, Any]]] = None,
                landscapes: Sequence[tuple[str, Sequence[Any], Optional[dict[str, Any]]]] = (),
                title: str = "") -> Path:
    """One PNG with the cases panel (when ``cases``) and one panel per ``(title, trials, winner)``."""
    plt = require_matplotlib()
    panels = (1 if cases else 0) + len(landscapes)
    if panels == 0:
        raise TilecError("--plot: nothing to plot (no case ran)")
    fig, axes = plt.subplots(panels, 1, figsize=(max(6.0, 0.6 * max(len(cases or ()), 10)), 3.6 * panels),
                             squeeze=False)
    k = 0
    if cases:
        plot_cases(axes[k][0], cases, title)
        k += 1
    for name, trials, best in landscapes:
        plot_landscape(axes[k][0], trials, name, best)
        k += 1
    fig.tight_layout()
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise TilecError(f"--plot {path}: the folder '{path.parent}' does not exist")
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
