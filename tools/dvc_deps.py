"""The code dependencies of each stage in dvc.yaml, derived from the imports.

``python -m tools.dvc_deps`` rewrites them in place; ``python -m tools.dvc_deps --check`` exits 1 and names
the differences (the test suite runs it). A stage's code dependencies are its entry module (``python -m
stages.X`` in ``cmd``) and every module of the project it imports, transitively, counting imports inside
functions (lazy ones) but not those under ``if TYPE_CHECKING:`` (never run). Package ``__init__.py`` files
are left out. Dependencies that are not Python files (data, taxonomy) are kept as written, after the code.
So editing a module re-runs exactly the stages that run it, and nothing else.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("callreason", "stages")
STAGE = re.compile(r"^  (\w+):\s*(&\w+)?\s*(#.*)?$")
ITEM = re.compile(r"^    - (\S+)\s*(#.*)?$")


def module_path(name: str, root: Path = ROOT) -> Path | None:
    """The file of project module ``name`` (``a.b`` -> ``a/b.py`` or ``a/b/__init__.py``), or None."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = root / Path(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imported_modules(path: Path, root: Path = ROOT) -> set[str]:
    """Project modules ``path`` imports anywhere (module level or inside functions), TYPE_CHECKING blocks aside."""
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {name for name in found if module_path(name, root) is not None}


def code_deps(entry: str, root: Path = ROOT) -> list[str]:
    """The entry module's file, then every project module it runs (sorted), as paths relative to ``root``."""
    first = module_path(entry, root)
    if first is None:
        raise SystemExit(f"dvc.yaml: no module {entry!r} in the project")
    seen, todo = {first}, [first]
    while todo:
        for name in imported_modules(todo.pop(), root):
            path = module_path(name, root)
            if path not in seen:
                seen.add(path)
                todo.append(path)
    rest = sorted(str(p.relative_to(root)) for p in seen - {first} if p.name != "__init__.py")
    return [str(first.relative_to(root)), *rest]


def rewrite(text: str, root: Path = ROOT) -> tuple[str, dict[str, tuple[list[str], list[str]]]]:
    """dvc.yaml's text with each explicit ``deps:`` list's Python files replaced by :func:`code_deps` of the
    stage's ``cmd``; returns (new text, {stage: (removed, added)} for the stages that change)."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    changes: dict[str, tuple[list[str], list[str]]] = {}
    stage, entry, i = None, None, 0
    entries = {}
    current = None
    for line in lines:  # each stage's entry module, from its cmd line
        match = STAGE.match(line)
        current = match.group(1) if match else current
        cmd = re.match(r"^    cmd: python -m (\S+)", line)
        if cmd and current:
            entries[current] = cmd.group(1)
    while i < len(lines):
        line = lines[i]
        match = STAGE.match(line)
        if match:
            stage = match.group(1)
            entry = entries.get(stage)
        out.append(line)
        i += 1
        if stage and entry and re.match(r"^    deps:(\s+&\w+)?\s*$", line):
            items = []
            while i < len(lines) and ITEM.match(lines[i]):
                items.append(ITEM.match(lines[i]).group(1))
                i += 1
            old_code = [d for d in items if d.endswith(".py")]
            new_code = code_deps(entry, root)
            if old_code != new_code:
                changes[stage] = (sorted(set(old_code) - set(new_code)), sorted(set(new_code) - set(old_code)))
            out.extend(f"    - {d}\n" for d in [*new_code, *(d for d in items if not d.endswith(".py"))])
    return "".join(out), changes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.dvc_deps", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check: exit 1 if dvc.yaml's code deps differ")
    parser.add_argument("--dvc-yaml", type=Path, default=ROOT / "dvc.yaml")
    args = parser.parse_args(argv)
    text = args.dvc_yaml.read_text(encoding="utf-8")
    new, changes = rewrite(text, args.dvc_yaml.resolve().parent)
    for stage, (removed, added) in changes.items():
        print(f"{stage}: " + "; ".join(filter(None, [removed and f"not imported: {', '.join(removed)}",
                                                       added and f"imported but not declared: {', '.join(added)}"]))
              + ("" if removed or added else "the same modules, sorted"))
    if args.check:
        if changes:
            print("dvc.yaml: code deps differ from the imports; run `python -m tools.dvc_deps`", file=sys.stderr)
        return 1 if changes else 0
    if new != text:
        args.dvc_yaml.write_text(new, encoding="utf-8")
        print(f"rewrote the code deps of {len(changes)} stage(s) in {args.dvc_yaml}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
