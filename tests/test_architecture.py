"""The package layout holds: each subpackage imports only the layers below it, there are no import
cycles, and no module imports another module's private names."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "inception_v3"

# subpackage -> what it may import (besides itself). The README's Development section shows this table.
ALLOWED = {
    "errors": set(),
    "utils": {"errors"},
    "models": {"errors", "utils"},
    "data": {"errors", "utils"},
    "interop": {"errors", "utils", "models"},
    "deploy": {"errors", "utils", "models"},
    "evaluation": {"errors", "utils", "models", "data", "interop", "deploy"},
    "scoring": {"errors", "utils", "models", "data", "interop", "deploy", "evaluation"},
    "training": {"errors", "utils", "models", "data", "interop", "evaluation"},
    "reproduction": {"errors", "utils", "models", "data", "training", "evaluation"},
}
TOP = {"cli", "api", "weights", "inference", "__init__"}  # the public surface may import anything


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(p for p in parts if p != "__init__") or "__init__"


def imports(path: Path) -> list[tuple[str, list[str]]]:
    """(absolute module inside the package, imported names) for every import in the file, nested ones too."""
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            base = package[: len(package) - (node.level - 1)]
            target = ".".join([*base, *(node.module.split(".") if node.module else [])])
            out.append((target, [a.name for a in node.names]))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("inception_v3"):
            out.append((node.module.removeprefix("inception_v3").lstrip("."), [a.name for a in node.names]))
    return out


def test_layers_import_only_what_they_may() -> None:
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 30
    wrong = []
    for path in files:
        name = module_name(path)
        layer = name.split(".")[0]
        if layer in TOP:
            continue
        assert layer in ALLOWED, f"{name}: subpackage {layer} is missing from the layer table"
        for target, _ in imports(path):
            other = target.split(".")[0]
            if other != layer and other not in ALLOWED[layer]:
                wrong.append(f"{name} imports {target}")
    assert not wrong, wrong


def test_no_private_names_cross_modules() -> None:
    wrong = [f"{module_name(p)} imports {n} from {t}" for p in PACKAGE.rglob("*.py") for t, names in imports(p)
             for n in names if n.startswith("_") and n != "__version__"]  # fmt: skip
    assert not wrong, wrong


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports (`from .pkg import module` counts as importing the module)."""
    graph: dict[str, set[str]] = {}
    modules = {module_name(p) for p in PACKAGE.rglob("*.py")}
    for path in PACKAGE.rglob("*.py"):
        deps = set()
        for target, names in imports(path):
            for candidate in [f"{target}.{n}" for n in names] + [target]:
                if candidate in modules and candidate != module_name(path):
                    deps.add(candidate)
                    break
        graph[module_name(path)] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as [a, b, ..., a], or [] when the graph has none (depth-first search)."""
    done: set[str] = set()

    def visit(node: str, stack: list[str]) -> list[str]:
        if node in stack:
            return [*stack[stack.index(node) :], node]
        if node in done:
            return []
        for dep in sorted(graph.get(node, ())):
            cycle = visit(dep, [*stack, node])
            if cycle:
                return cycle
        done.add(node)
        return []

    for node in sorted(graph):
        cycle = visit(node, [])
        if cycle:
            return cycle
    return []


def test_no_import_cycles() -> None:
    graph = import_graph()
    assert graph["training.loop"] >= {"training.checkpoints", "models.inception"}  # the graph sees real imports
    assert find_cycle(graph) == [], " -> ".join(find_cycle(graph))
    # the search does find a cycle when there is one: reproduction.runner <-> reproduction.report, as before
    planted = {**graph, "reproduction.report": graph["reproduction.report"] | {"reproduction.runner"},
               "reproduction.runner": graph["reproduction.runner"] | {"reproduction.report"}}  # fmt: skip
    assert find_cycle(planted) in (["reproduction.report", "reproduction.runner", "reproduction.report"],
                                   ["reproduction.runner", "reproduction.report", "reproduction.runner"])  # fmt: skip
