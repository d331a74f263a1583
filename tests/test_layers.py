"""The import graph of tilec/ (backends included): no circles, no arrow that runs up the layers.

Read with ``ast`` from the source (nothing is imported), every ``import`` counts, the ones inside
functions too: a lazy import hides a circle from Python's loader but not from a reader. Only imports under
``if TYPE_CHECKING:`` are left out. The layers, lowest first (docs/internals.md, "Layers"):

    base      tilec.errors, tilec.version, tilec.numerics, tilec.ir
    interp    tilec.interp                       (the numpy oracle)
    passes    tilec.passes
    frontend  tilec.frontend                     (Python source -> Tile IR)
    language  tilec.language                     (the ``T`` surface, on top of the frontend)
    targets   tilec.targets (the registry), tilec.runtime's services (cache, args, artifacts),
              tilec.backends.*                   (plugged in through the registry's entry points)
    runtime   tilec.runtime                      (compile / jit / check / load)
    tools     tilec (the package root), tilec.cli, tilec.fuzz, tilec.models, tilec.autotuner, ...

A module imports only from its own layer or below, and nothing outside tilec.backends names a backend: the
core reaches targets through ``tilec.targets`` alone.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "tilec"

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("tilec.errors", "tilec.version", "tilec.numerics", "tilec.ir")),
    ("interp", ("tilec.interp",)),
    ("passes", ("tilec.passes",)),
    ("frontend", ("tilec.frontend",)),
    ("language", ("tilec.language",)),
    ("targets", ("tilec.targets", "tilec.runtime.cache", "tilec.runtime.args", "tilec.runtime.artifacts",
                 "tilec.backends")),
    ("runtime", ("tilec.runtime", "tilec.profiler")),
]
TOOLS = "tools"   # everything not listed: the package root, the CLI, fuzz, models, autotuner


def _modules() -> dict[str, Path]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _type_checking_only(tree: ast.AST) -> set[int]:
    """ids of import nodes under ``if TYPE_CHECKING:``."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return skip


def import_graph() -> dict[str, set[str]]:
    """module -> the tilec modules it imports (``from pkg import submodule`` counts as the submodule)."""
    mods = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        skip = _type_checking_only(tree)
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        found: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    prefix = ".".join(package[:len(package) - node.level + 1])
                    base = f"{prefix}.{base}" if base else prefix
                subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in mods]
                found.update(subs)
                if len(subs) < len(node.names):
                    found.add(base)
        targets = set()
        for dep in found:
            while dep and dep not in mods:
                dep = dep.rpartition(".")[0]
            if dep and dep != name and dep.startswith("tilec"):
                targets.add(dep)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def layer_of(module: str) -> tuple[int, str]:
    """(rank, name) of the most specific layer prefix that matches ``module``."""
    best: tuple[int, int, str] = (-1, len(LAYERS), TOOLS)
    for rank, (layer, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best[0]:
                best = (len(prefix), rank, layer)
    return best[1], best[2]


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for module, deps in sorted(graph.items()):
        rank, layer = layer_of(module)
        for dep in sorted(deps):
            dep_rank, dep_layer = layer_of(dep)
            if dep_rank > rank:
                bad.append(f"{module} ({layer}) imports {dep} ({dep_layer})")
    return bad


def backend_imports_from_core(graph: dict[str, set[str]]) -> list[str]:
    return [f"{m} imports {d}" for m, deps in sorted(graph.items()) if not m.startswith("tilec.backends")
            for d in sorted(deps) if d.startswith("tilec.backends")]


def test_the_import_graph_has_no_cycles() -> None:
    found = cycles(import_graph())
    assert not found, "import cycles:\n" + "\n".join("  " + " <-> ".join(c) for c in found)


def test_no_import_runs_up_the_layers() -> None:
    bad = upward_imports(import_graph())
    assert not bad, "imports from a higher layer:\n" + "\n".join("  " + b for b in bad)


def test_the_core_reaches_backends_only_through_the_registry() -> None:
    bad = backend_imports_from_core(import_graph())
    assert not bad, "modules outside tilec.backends that name a backend:\n" + "\n".join("  " + b for b in bad)


# --- the checks themselves ------------------------------------------------------------------------------

def test_the_checker_finds_a_cycle_and_an_upward_import() -> None:
    graph = {"tilec.ir.a": {"tilec.ir.b"}, "tilec.ir.b": {"tilec.ir.a"}, "tilec.passes.p": {"tilec.ir.a"},
             "tilec.ir.c": {"tilec.passes.p"}, "tilec.runtime.kernel": {"tilec.backends.llvm.target"}}
    assert cycles(graph) == [["tilec.ir.a", "tilec.ir.b"]]
    assert upward_imports(graph) == ["tilec.ir.c (base) imports tilec.passes.p (passes)"]
    assert backend_imports_from_core(graph) == ["tilec.runtime.kernel imports tilec.backends.llvm.target"]


def test_the_graph_sees_lazy_and_relative_imports() -> None:
    graph = import_graph()
    assert "tilec.ir.verifier" in graph["tilec.passes.manager"]      # a top-level relative import
    assert "tilec.frontend" in graph["tilec.language"]                # a lazy one, inside prim_func
    assert layer_of("tilec.runtime.cache") == (5, "targets") and layer_of("tilec.runtime.kernel")[1] == "runtime"
