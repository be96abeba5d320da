"""The package layers point down only: models <- train <- {lab, olympiad, research}; errors, runs and tables
are shared by all. Read off the source (every import, including those inside functions), not off a running
process, so a lazy import cannot hide a wrong-way edge or a cycle."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "lyceum"
SHARED = {"errors", "runs", "tables", "__init__", "__main__"}
ALLOWED = {  # layer -> the layers it may import (besides itself and SHARED)
    "models": set(),
    "train": {"models"},
    "lab": {"models", "train"},
    "olympiad": {"models", "train"},
    "research": {"models", "train"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in SRC.rglob("*.py")}


def imports(name: str) -> list[tuple[str, str | None]]:
    """(imported lyceum module, imported attribute or None) for every import statement in module ``name``."""
    tree = ast.parse(MODULES[name].read_text())
    package = name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, None) for a in node.names if a.name.startswith("lyceum")]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            if not base.startswith("lyceum"):
                continue
            for a in node.names:
                sub = f"{base}.{a.name}"
                out.append((sub, None) if sub in MODULES else (base, a.name))
    return out


def layer(module: str) -> str:
    return module.split(".")[1] if module.count(".") else "__init__"


def is_cli(module: str) -> bool:
    last = module.rsplit(".", 1)[-1]
    return last in ("cli", "commands") or last.endswith("_commands")


@pytest.mark.parametrize("name", sorted(m for m in MODULES))
def test_a_module_imports_only_its_own_layer_and_the_ones_below(name):
    mine = layer(name)
    if mine in SHARED or mine == "cli":
        return
    wrong = sorted({m for m, _ in imports(name) if layer(m) not in SHARED | ALLOWED[mine] | {mine}})
    assert not wrong, f"{name} ({mine}) imports {wrong}"


@pytest.mark.parametrize("name", sorted(m for m in MODULES))
def test_no_module_imports_another_modules_private_names_or_a_cli_module(name):
    private = sorted(f"{m}.{a}" for m, a in imports(name) if a and a.startswith("_") and not a.startswith("__") and m != name)
    assert not private, f"{name} imports private names {private}"
    if not is_cli(name) and name != "lyceum.__main__":
        cli = sorted({m for m, _ in imports(name) if is_cli(m)})
        assert not cli, f"{name} imports command-line modules {cli}"


@pytest.mark.parametrize("package", ["models", "train", "lab", "olympiad"])
def test_no_import_cycles_inside_a_layer(package):
    graph = {m: {i for i, _ in imports(m) if i in MODULES and i != m and layer(i) == package}
             for m in MODULES if layer(m) == package}
    state: dict[str, int] = {}

    def visit(m, path):
        state[m] = 1
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                cycle = path[path.index(n):] + [n] if n in path else [m, n]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if n in graph and not state.get(n):
                visit(n, path + [n])
        state[m] = 2

    for m in sorted(graph):
        if not state.get(m):
            visit(m, [m])
