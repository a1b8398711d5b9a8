"""Reading the user's files with clear errors, and writing outputs atomically."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

import pandas as pd
import pyarrow.lib
import pyarrow.parquet
import yaml

from callreason.errors import InputError, cause


def check_input_file(path: str | Path, what: str = "file", fix: str = "check the path (relative to the repository root)",
                     folder_ok: bool = False) -> Path:
    """``path`` as a ``Path`` if it exists and is a file (or, with ``folder_ok``, a folder); else an ``InputError``."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: {what} not found; {fix}")
    if path.is_dir() and not folder_ok:
        raise InputError(f"{path}: is a folder, expected the {what} file; give the path of the file itself")
    if not path.is_dir() and not path.is_file():
        raise InputError(f"{path}: is not a regular file; give the path of the {what} file")
    return path


def read_text(path: str | Path, what: str = "file", fix: str = "check the path (relative to the repository root)") -> str:
    """The UTF-8 text of a file; a missing file, a folder or undecodable bytes are one ``InputError`` line."""
    path = check_input_file(path, what, fix)
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at line {line}); save it as UTF-8 "
                         "(in Excel: Save As > CSV UTF-8; in Python: encoding='utf-8')") from None


def parquet_files(path: Path) -> list[Path]:
    """The parquet files of ``path`` (itself, or every file of a folder, recursively); each checked with its
    footer so a bad one is named. Hidden files and ``_``-prefixed ones (``_SUCCESS``) are skipped, as pyarrow does."""
    files = [path] if path.is_file() else sorted(
        f for f in path.rglob("*") if f.is_file()
        and not any(part.startswith((".", "_")) for part in f.relative_to(path).parts))
    if path.is_dir() and not files:
        raise InputError(f"{path}: an empty folder, no parquet files in it; put the parquet file(s) there or give a file")
    bad = []
    for file in files:
        try:
            pyarrow.parquet.read_metadata(file)
        except (pyarrow.lib.ArrowException, OSError):
            bad.append(file)
    if bad:
        inside = f" (inside the input folder {path})" if path.is_dir() else ""
        raise InputError(*(f"{file}: not a readable parquet file{inside}; "
                           + ("move it out of the folder, or " if path.is_dir() else "")
                           + "write it with pandas `df.to_parquet(path)`" for file in bad))
    return files


def read_parquet(path: str | Path, what: str = "file", fix: str = "put it there or set its path in params.yaml"
                 ) -> pd.DataFrame:
    """Read a parquet file (or a folder of them), turning a missing or unreadable one into an ``InputError``
    that names the file; ``fix`` says what to do about a missing one."""
    path = check_input_file(path, what, fix, folder_ok=True)
    files = parquet_files(path)
    try:
        return pd.read_parquet(path) if path.is_dir() else pd.read_parquet(files[0])
    except (pyarrow.lib.ArrowException, OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable parquet file ({cause(exc, 100)}); "
                         "write it with pandas `df.to_parquet(path)`") from exc


def _line_of(text: str, position: int) -> int:
    return text.count("\n", 0, position) + 1


def _duplicate_json_keys(text: str) -> list[tuple[str, list[int]]]:
    """Keys that appear twice in one JSON object, with the lines where the key is written."""
    found: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in items]
        found.extend(k for k in dict.fromkeys(keys) if keys.count(k) > 1)
        return dict(items)

    json.loads(text, object_pairs_hook=pairs)
    out = []
    for key in dict.fromkeys(found):
        pattern = re.compile(re.escape(json.dumps(key)) + r"\s*:")
        out.append((key, [_line_of(text, m.start()) for m in pattern.finditer(text)]))
    return out


def read_json(path: str | Path, what: str = "file", fix: str | None = None) -> Any:
    """A JSON file parsed; missing, a folder, not UTF-8, invalid (with line and column) or a key written
    twice in one object (JSON would keep only the last) are ``InputError`` lines ending with ``fix`` (by
    default: check the path, or fix the file)."""
    path = Path(path)
    text = read_text(path, what, fix or "check the path (relative to the repository root)")
    fix = fix or "fix the file"
    try:
        duplicates = _duplicate_json_keys(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON at line {exc.lineno}, column {exc.colno} ({exc.msg})"
                         + (" (the file is empty)" if not text.strip() else "") + f"; {fix}") from None
    if duplicates:
        raise InputError(*(f"{path}: key {key!r} appears {len(lines)} times in one object (lines "
                           f"{', '.join(map(str, lines))}); JSON keeps only the last, so the others would be lost: "
                           "merge them into one" for key, lines in duplicates))
    return json.loads(text)


DATA_PATH_KEYS = ("labeled", "unlabeled", "relabeled", "taxonomy")
"""``data.*`` params that name the user's input files: they must lie inside the repository."""


class Yaml12Loader(yaml.SafeLoader):
    """PyYAML's safe loader, reading exponent floats as YAML 1.2 (and DVC) do: ``1e-4`` is a number, where
    PyYAML's YAML 1.1 rules would make it the string ``'1e-4'``; a key written twice in one mapping is an
    error (PyYAML would keep the last silently; DVC refuses the file)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor`: its keys may be overridden
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in one mapping (lines {seen[key]} and {line}); keep one",
                    key_node.start_mark)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def parse_yaml(text: str) -> Any:
    """``text`` parsed as YAML with :class:`Yaml12Loader` (raises ``yaml.YAMLError``)."""
    return yaml.load(text, Loader=Yaml12Loader)  # noqa: S506 (a SafeLoader subclass)


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """The whole params.yaml as a dict (the one source of settings), its input paths checked."""
    path = Path(path)
    text = read_text(path, "params", "run from the repository root")
    try:
        params = parse_yaml(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InputError(f"{path}: not valid YAML{where} ({getattr(exc, 'problem', None) or exc}); "
                         "fix the file (`git diff params.yaml` shows what changed)") from None
    if not isinstance(params, dict):
        raise InputError(f"{path}: must be a mapping of sections (seed:, epochs:, data:, ...), "
                         f"got {type(params).__name__}; restore it with `git checkout params.yaml`")
    check_data_paths(params, path.resolve().parent)
    return params


def pipeline_outputs(root: Path) -> list[str]:
    """Every path ``root/dvc.yaml`` declares as a stage output (outs, metrics, plots); none without the file."""
    try:
        stages = (parse_yaml((root / "dvc.yaml").read_text(encoding="utf-8")) or {}).get("stages") or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError, AttributeError):
        return []
    paths = []
    for stage in stages.values():
        for key in ("outs", "metrics", "plots"):
            for item in (stage or {}).get(key) or []:
                name = next(iter(item)) if isinstance(item, dict) else item
                if isinstance(name, str):
                    paths.append(name)
    return paths


def check_data_paths(params: dict[str, Any], root: Path) -> None:
    """Each ``data.<key>`` path must resolve (symlinks followed) inside ``root`` (DVC tracks only files of the
    repository, so a file outside it could change without re-running anything) and must not be, hold or lie in
    an output of the pipeline (``dvc.yaml``), which a stage would overwrite. All problems in one error."""
    problems = []
    outputs = [(name, (root / name).resolve()) for name in pipeline_outputs(root)]
    for key in DATA_PATH_KEYS:
        value = (params.get("data") or {}).get(key)
        if value is None:
            continue
        resolved = (root / str(value)).resolve()
        if not resolved.is_relative_to(root):
            problems.append(f"params.yaml data.{key}: {value} resolves to {resolved}, outside the repository "
                            f"{root}; copy the file into the repository (e.g. data/) and point data.{key} there")
            continue
        clash = next((name for name, out in outputs if resolved == out or resolved.is_relative_to(out)
                      or out.is_relative_to(resolved)), None)
        if clash is not None:
            problems.append(f"params.yaml data.{key}: {value} is (or holds) {clash}, which a stage of dvc.yaml writes; "
                            f"point data.{key} at your own file (e.g. data/phase2_labeled.parquet)")
    if problems:
        raise InputError(*problems)


def check_outputs(outputs: dict[str | Path, str], inputs: Iterable[str | Path] = (), what: str = "--output",
                  clash_fix: str = "write the output to another path") -> None:
    """Check where a command will write, before any work: ``outputs`` maps each path to ``"file"`` or
    ``"folder"``. A file output that is an existing folder, a folder output that is a file, an output that is,
    holds or lies inside one of ``inputs`` (``clash_fix`` says what to do), or one whose parent is a file: one
    line each, all in one error. ``what`` names the output in messages."""
    problems = []
    resolved_inputs = [(Path(p), Path(p).resolve()) for p in inputs]
    for raw, kind in outputs.items():
        path = Path(raw)
        resolved = path.resolve()
        if kind == "file" and path.is_dir():
            problems.append(f"{path}: {what} is an existing folder; give the path of a file to write, e.g. "
                            f"{path / 'predictions.parquet'} (nothing was written)")
        elif kind == "folder" and path.exists() and not path.is_dir():
            problems.append(f"{path}: {what} is an existing file; give a folder path (nothing was written)")
        for given, inp in resolved_inputs:
            relation = ("is" if resolved == inp else "lies inside" if resolved.is_relative_to(inp)
                        else "holds" if inp.is_relative_to(resolved) else None)
            if relation:
                problems.append(f"{path}: {what} {relation} the input {given}; {clash_fix} (nothing was written)")
                break
        parent = next((a for a in path.parents if a.exists()), None)
        if parent is not None and not parent.is_dir():
            problems.append(f"{path}: {what}'s parent {parent} is a file, not a folder; give a path in a folder")
    if problems:
        raise InputError(*problems)


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling path; on success move it onto ``target`` (file or folder).

    On any error (or Ctrl-C) the temporary is removed and ``target`` is left as it was. An existing folder
    at ``target`` is replaced only by a folder (a command that writes a folder there); a file is never moved
    onto a folder, so a mistyped output path cannot delete the user's folder.
    """
    target = Path(target)
    parent = next((a for a in target.parents if a.exists()), None)
    if parent is not None and not parent.is_dir():
        raise InputError(f"{target}: its parent {parent} is a file, not a folder; move that file away or write elsewhere")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent)) / target.name
    try:
        yield tmp
        if target.is_dir() and not target.is_symlink():
            if not tmp.is_dir():
                raise InputError(f"{target}: is an existing folder; refusing to replace it with a file (nothing was "
                                 "written; give the path of a file)")
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
            os.replace(target, old / target.name)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp.parent, ignore_errors=True)


def write_json(data: Any, target: str | Path) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_parquet(frame: pd.DataFrame, target: str | Path) -> None:
    with atomic_path(target) as tmp:
        frame.to_parquet(tmp, index=False)
