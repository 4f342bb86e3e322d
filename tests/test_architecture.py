"""The shape of the package, checked: floors run one way, no import cycle, small modules, a thin CLI.

Floors (a module may import its own floor's packages and lower floors, never a higher one — not even inside a
function, where a cycle would otherwise hide):

    0  errors, files, text, resources, templating
    1  layout, sdscripts/, kohya_ss/
    2  recipe/
    3  render/, gui/, dataset/
    4  train/, report/
    5  cli/
"""

from __future__ import annotations

import ast
import statistics
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "kohya_recipe"
FLOORS = {
    "errors": 0,
    "files": 0,
    "text": 0,
    "resources": 0,
    "templating": 0,
    "layout": 1,
    "sdscripts": 1,
    "kohya_ss": 1,
    "recipe": 2,
    "render": 3,
    "gui": 3,
    "dataset": 3,
    "train": 4,
    "report": 4,
    "cli": 5,
    "__main__": 5,
}
MAX_MODULE_LINES = 600
MAX_COMMAND_LINES = 25
MEDIAN_COMMAND_LINES = 12


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(path: Path) -> set[str]:
    """Every kohya_recipe module ``path`` imports, at any depth of the file (functions included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("kohya_recipe"):
            found.add(node.module)
            # `from kohya_recipe.train import run` imports the module kohya_recipe.train.run
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("kohya_recipe"))
    return found


def _stage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        graph[name] = {m for m in _imports(path) if m in modules and m != name}
    return graph


def test_every_package_has_a_floor() -> None:
    stages = {s for s in (_stage(m) for m in _modules()) if s is not None}
    assert stages <= set(FLOORS), f"give these a floor in this test: {sorted(stages - set(FLOORS))}"


def test_no_module_imports_a_higher_floor() -> None:
    wrong = []
    for module, deps in _graph().items():
        stage = _stage(module)
        if stage is None:
            continue  # the package's lazy exports
        for dep in deps:
            dep_stage = _stage(dep)
            if dep_stage is not None and FLOORS[dep_stage] > FLOORS[stage]:
                wrong.append(f"{module} (floor {FLOORS[stage]}) imports {dep} (floor {FLOORS[dep_stage]})")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_cycle() -> None:
    graph = _graph()
    graph.pop("kohya_recipe", None)  # __init__ only maps names to modules, lazily
    seen: dict[str, int] = {}  # 1 = on the stack, 2 = done
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        seen[node] = 1
        for dep in sorted(graph.get(node, ())):
            if dep == "kohya_recipe" or dep.startswith(f"{node}."):
                continue  # a package importing its own submodule is not a cycle
            if seen.get(dep) == 1:
                cycles.append([*stack[stack.index(dep) :], dep])
            elif dep not in seen:
                visit(dep, [*stack, dep])
        seen[node] = 2

    for module in sorted(graph):
        if module not in seen:
            visit(module, [module])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("name", sorted(_modules()))
def test_module_is_small(name: str) -> None:
    lines = len(_modules()[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_MODULE_LINES, f"{name} has {lines} lines; split it by concern"


def _command_bodies() -> dict[str, int]:
    """Lines of each click command's body (after its docstring), for every command in cli/."""
    out = {}
    for path in (PACKAGE / "cli").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.FunctionDef):
                continue
            decorated = any(
                isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute) and d.func.attr in ("command", "group")
                for d in node.decorator_list
            )
            if not decorated:
                continue
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                body = body[1:]  # the docstring is --help, not logic
            out[f"{path.stem}.{node.name}"] = (body[-1].end_lineno or 0) - body[0].lineno + 1 if body else 0
    return out


def test_cli_commands_are_thin() -> None:
    bodies = _command_bodies()
    assert len(bodies) >= 20, bodies
    fat = {name: n for name, n in bodies.items() if n > MAX_COMMAND_LINES}
    assert not fat, f"command bodies over {MAX_COMMAND_LINES} lines: {fat}"
    assert statistics.median(bodies.values()) <= MEDIAN_COMMAND_LINES, sorted(bodies.items(), key=lambda kv: -kv[1])
