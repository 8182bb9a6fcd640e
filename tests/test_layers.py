"""The package's layers: models <- data <- training <- the `hfmicro` verbs and bench/. A module imports from its
own layer and the ones below it, never from above, and no two modules import each other in a loop."""

import ast
import os

import pytest

from helpers import ROOT

# lowest first; a module belongs to the layer of the longest name here that it starts with
LAYERS = [
    ("base", ["hfmicro", "hfmicro.atomic", "hfmicro.errors", "hfmicro.verbs"]),
    ("models", ["hfmicro.models", "hfmicro.objectives", "hfmicro.presets", "hfmicro.convert", "hfmicro.pipelines"]),
    ("data", ["hfmicro.data", "hfmicro.metrics"]),
    ("training", ["hfmicro.training"]),
    ("tools", ["hfmicro.cli", "hfmicro.bpe", "hfmicro.estimate", "hfmicro.evaluation", "hfmicro.inference",
               "hfmicro.compare"]),
]
BENCH_SHARED = {"recipe_runs", "baselines"}  # the modules bench scripts share (bench/*.py import them by name)


def package_modules() -> dict[str, str]:
    """Every module of the hfmicro package (packages by their own name), with its file."""
    modules = {}
    for folder, _, files in os.walk(os.path.join(ROOT, "hfmicro")):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                dotted = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                modules[dotted.removesuffix(".__init__")] = path
    return modules


def imports_of(path: str, module: str, known: set[str]) -> set[str]:
    """The modules of `known` that `path` (module `module`) imports anywhere in it, function bodies included."""
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            # `from package import submodule` imports the submodule
            found |= {f"{target}.{a.name}" if f"{target}.{a.name}" in known else target for a in node.names}
    return {name for name in found if name in known}


def layer_of(module: str) -> int:
    best = max(((len(prefix), i) for i, (_, prefixes) in enumerate(LAYERS) for prefix in prefixes
                if module == prefix or module.startswith(prefix + ".") and prefix != "hfmicro"), default=None)
    assert best is not None, f"{module} belongs to no layer: add it to LAYERS"
    return best[1]


def test_no_module_imports_from_a_higher_layer():
    modules = package_modules()
    upward = [f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
              for module, path in modules.items() for target in imports_of(path, module, set(modules))
              if layer_of(target) > layer_of(module)]
    assert not upward, upward


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt]
            if nxt not in state and (cycle := visit(nxt, path + [nxt])):
                return cycle
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [start])):
            return cycle
    return None


def test_no_import_cycle_in_the_package():
    modules = package_modules()
    graph = {m: imports_of(p, m, set(modules)) - {m} for m, p in modules.items()}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("script", sorted(n for n in os.listdir(os.path.join(ROOT, "bench")) if n.endswith(".py")))
def test_bench_scripts_share_modules_not_each_other(script):
    """A bench script imports hfmicro and the shared bench modules; none puts folders on sys.path or uses
    another script as a library (they call each other as commands)."""
    path = os.path.join(ROOT, "bench", script)
    source = open(path, encoding="utf-8").read()
    assert "sys.path.insert" not in source and "sys.path.append" not in source
    scripts = {n[:-3] for n in os.listdir(os.path.join(ROOT, "bench")) if n.endswith(".py")}
    imported = imports_of(path, "bench." + script[:-3], {f"bench.{s}" for s in scripts} | scripts)
    assert {name.removeprefix("bench.") for name in imported} <= BENCH_SHARED - {script[:-3]}, imported
