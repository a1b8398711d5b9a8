"""The package's import graph has no circle (lazy imports counted, TYPE_CHECKING ones not)."""

from pathlib import Path

from tools.dvc_deps import imported_modules, module_path

ROOT = Path(__file__).parents[1]


def import_cycles(root: Path) -> list[list[str]]:
    """Every circle found by a depth-first walk of ``root/callreason``'s imports, as module file paths."""
    graph = {str(p.relative_to(root)): sorted(str(module_path(m, root).relative_to(root)) for m in imported_modules(p, root))
             for p in sorted((root / "callreason").rglob("*.py"))}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def walk(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in graph.get(node, []):
            if nxt.endswith("__init__.py"):
                continue
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [node, nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                walk(nxt, path + [node])
        state[node] = 2

    for node in graph:
        if node not in state:
            walk(node, [])
    return cycles


def test_the_package_has_no_import_circle():
    assert import_cycles(ROOT) == []


def test_a_circle_is_found(tmp_path):
    (tmp_path / "callreason").mkdir()
    (tmp_path / "callreason" / "a.py").write_text("from callreason.b import f\n")
    (tmp_path / "callreason" / "b.py").write_text("def f():\n    from callreason import a\n")
    assert import_cycles(tmp_path) == [["callreason/a.py", "callreason/b.py", "callreason/a.py"]]
