"""minikit is one house whose imports only go down (issue 21).

Every module's imports of minikit, at top level and inside functions, are read from its source
(nothing is imported) and held against the declared layers below. The checks fail on:

- a cycle, through any kind of import;
- an import that goes up the layer order (the same layer is fine, as long as there is no cycle);
- an import of another module's ``_private`` name, or ``alias._private`` on an imported module;
- an import inside a function with no comment saying why it is not at the top (an optional or
  heavy dependency, a module that must not be loaded yet);
- a module that must stand alone (``server``, ``charts``…) importing minikit at all;
- a package module over 600 lines.

The last two tests plant a cycle and a private import in a copy of the package and show that the
checks catch them.
"""

from __future__ import annotations

import ast
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "minikit"

# Bottom to top. A module imports only from its own layer or the layers below.
LAYERS: list[tuple[str, set[str]]] = [
    ("base", {"errors", "settings", "system", "claims", "stats", "cache", "timing"}),
    ("models and data", {"models", "loading", "data", "attention"}),
    ("training", {"loop", "training"}),
    ("measurement", {"metrics", "profiling", "benchmark", "budget", "attribution", "table_checks"}),
    ("techniques", {"pruning", "pruning_sweep", "quantization", "qat", "onnx_graph", "static_int8", "students",
                    "distillation", "distill_variants", "early_exit", "tasks", "multitask"}),
    # charts imports nothing of minikit, so it sits under the applications that draw (lab, report)
    ("drawing", {"charts", "compression_charts", "static_views"}),
    ("applications", {"server", "load_testing", "deployment", "lab", "report", "build"}),
    ("presentation", {"practice", "implement_it", "widgets", "compression_widgets", "check", "quantization_checks",
                      "editions"}),
    ("facade", {"__init__", "__main__"}),
]
STANDALONE = {"server", "charts", "compression_charts", "static_views", "claims", "stats", "system", "errors"}  # import nothing of minikit
MAX_LINES = 600


@dataclass(frozen=True)
class Import:
    importer: str
    line: int
    module: str  # the minikit module imported ("__init__" for names taken from the package itself)
    names: tuple[str, ...]  # names taken from it (empty for a plain module import)
    local: bool  # inside a function or method
    commented: bool  # a comment on its line or the line above


def _modules(package: Path) -> set[str]:
    return {p.stem for p in package.glob("*.py")}


def read_imports(package: Path) -> list[Import]:
    """Every import of a minikit module in ``package``, top-level and local."""
    modules, found = _modules(package), []
    for path in sorted(package.glob("*.py")):
        lines = path.read_text().splitlines()
        tree = ast.parse("\n".join(lines))
        local_nodes = {id(node) for func in ast.walk(tree) if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef))
                       for node in ast.walk(func)}

        def commented(lineno: int) -> bool:
            here, above = lines[lineno - 1], lines[lineno - 2] if lineno > 1 else ""
            return "#" in here or above.strip().startswith("#")

        for node in ast.walk(tree):
            targets: list[tuple[str, tuple[str, ...]]] = []
            if isinstance(node, ast.Import):
                targets = [(a.name.split(".")[1] if "." in a.name else "__init__", ())
                           for a in node.names if a.name.split(".")[0] == "minikit"]
            elif isinstance(node, ast.ImportFrom):
                module = node.module or ""
                if node.level:  # relative: from . import x / from .x import y
                    module = "minikit" + ("." + module if module else "")
                if module == "minikit":  # from minikit import x: x is a module, or a name from the facade
                    for alias in node.names:
                        if alias.name in modules:
                            targets.append((alias.name, ()))
                        else:
                            targets.append(("__init__", (alias.name,)))
                elif module.startswith("minikit."):
                    targets = [(module.split(".")[1], tuple(a.name for a in node.names))]
            for module, names in targets:
                found.append(Import(path.stem, node.lineno, module, names, id(node) in local_nodes,
                                    commented(node.lineno)))
    return found


def private_attribute_uses(package: Path) -> list[str]:
    """``alias._name`` where ``alias`` is another minikit module imported into this one."""
    modules, found = _modules(package), []
    for path in sorted(package.glob("*.py")):
        tree = ast.parse(path.read_text())
        aliases = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "minikit":
                aliases.update({a.asname or a.name: a.name for a in node.names if a.name in modules})
            elif isinstance(node, ast.Import):
                aliases.update({a.asname: a.name.split(".")[1] for a in node.names
                                if a.asname and a.name.startswith("minikit.")})
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and aliases[node.value.id] != path.stem
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                found.append(f"{path.stem}.py:{node.lineno} uses {aliases[node.value.id]}.{node.attr}")
    return found


def layer_of(module: str) -> int:
    for i, (_, members) in enumerate(LAYERS):
        if module in members:
            return i
    raise KeyError(module)


def find_cycle(imports: list[Import]) -> list[str] | None:
    """One cycle of module imports (as a path that returns to its start), or None."""
    graph: dict[str, set[str]] = {}
    for imp in imports:
        if imp.module != imp.importer:
            graph.setdefault(imp.importer, set()).add(imp.module)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node], _ = 1, path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node], _ = 2, path.pop()
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def problems(package: Path = PACKAGE) -> list[str]:
    """Every breach of the rules in the module docstring, one line each."""
    imports, found = read_imports(package), []
    cycle = find_cycle(imports)
    if cycle:
        found.append("cycle: " + " → ".join(cycle))
    for imp in imports:
        where = f"{imp.importer}.py:{imp.line}"
        if imp.module == imp.importer:
            continue
        if imp.importer in STANDALONE:
            found.append(f"{where} imports minikit.{imp.module}, but {imp.importer} must stand alone")
        try:
            up = layer_of(imp.module) > layer_of(imp.importer)
        except KeyError as unknown:
            found.append(f"{where}: module {unknown} is in no layer of tests/test_layers.py")
            continue
        if up:
            found.append(f"{where} imports {imp.module} ({LAYERS[layer_of(imp.module)][0]}) from "
                         f"{LAYERS[layer_of(imp.importer)][0]}: up the layers")
        private = [n for n in imp.names if n.startswith("_") and not n.startswith("__")]
        if private:
            found.append(f"{where} imports private {', '.join(private)} from {imp.module}")
        if imp.local and not imp.commented:
            found.append(f"{where} imports {imp.module} inside a function with no comment saying why not at the top")
    found += private_attribute_uses(package)
    for path in sorted(package.glob("*.py")):
        count = len(path.read_text().splitlines())
        if count > MAX_LINES:
            found.append(f"{path.name} has {count} lines (at most {MAX_LINES})")
    return found


def test_every_module_is_in_a_layer():
    declared = set().union(*(members for _, members in LAYERS))
    assert _modules(PACKAGE) - declared == set()


def test_every_module_is_reachable_from_the_facade():
    import minikit

    # loaded with the package, or named in minikit._ON_FIRST_USE
    assert {name for name in _modules(PACKAGE) if not name.startswith("__")} <= set(dir(minikit))


def test_the_package_keeps_its_layers():
    assert problems() == []


def _copy(tmp_path: Path) -> Path:
    copy = tmp_path / "minikit"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def test_a_planted_cycle_is_caught(tmp_path):
    package = _copy(tmp_path)
    errors = package / "errors.py"
    errors.write_text(errors.read_text() + "\n\ndef _late():\n    # planted\n    from minikit.training import fine_tune\n")
    found = problems(package)
    assert any(p.startswith("cycle: ") and "errors" in p and "training" in p for p in found), found
    assert any("errors.py" in p and "up the layers" in p for p in found), found
    assert any("errors must stand alone" in p for p in found), found


@pytest.mark.parametrize("planted, expected", [
    ("from minikit.training import _private_helper\n", "imports private _private_helper from training"),
    ("from minikit import training as T\nT._private_helper\n", "uses training._private_helper"),
])
def test_a_planted_private_import_is_caught(tmp_path, planted, expected):
    package = _copy(tmp_path)
    pruning = package / "pruning.py"
    pruning.write_text(pruning.read_text() + "\n" + planted)
    assert any(expected in p for p in problems(package)), problems(package)


def test_a_planted_uncommented_local_import_and_a_long_module_are_caught(tmp_path):
    package = _copy(tmp_path)
    lab = package / "lab.py"
    lab.write_text(lab.read_text() + "\n\ndef _f():\n    from minikit import pruning\n" + "\n" * MAX_LINES)
    found = problems(package)
    assert any("lab.py" in p and "inside a function" in p for p in found), found
    assert any(p.startswith("lab.py has") for p in found), found
