"""Reading the user's files with clear errors, and writing outputs atomically."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import pyarrow.lib
import yaml

from callreason.errors import InputError


def read_parquet(path: str | Path, what: str = "file") -> pd.DataFrame:
    """Read a parquet file, turning a missing or unreadable file into an ``InputError``."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: {what} not found; put it there or set its path in params.yaml")
    try:
        return pd.read_parquet(path)
    except (pyarrow.lib.ArrowException, OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable parquet file ({type(exc).__name__}); "
                         "write it with pandas `df.to_parquet(path)`") from exc


def read_json(path: str | Path, what: str = "file") -> Any:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: {what} not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc}); fix the file") from exc


DATA_PATH_KEYS = ("labeled", "unlabeled", "relabeled", "taxonomy")
"""``data.*`` params that name the user's input files: they must lie inside the repository."""


class Yaml12Loader(yaml.SafeLoader):
    """PyYAML's safe loader, reading exponent floats as YAML 1.2 (and DVC) do: ``1e-4`` is a number, where
    PyYAML's YAML 1.1 rules would make it the string ``'1e-4'``."""


Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def parse_yaml(text: str) -> Any:
    """``text`` parsed as YAML with :class:`Yaml12Loader` (raises ``yaml.YAMLError``)."""
    return yaml.load(text, Loader=Yaml12Loader)  # noqa: S506 (a SafeLoader subclass)


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """The whole params.yaml as a dict (the one source of settings), its input paths checked."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: params file not found; run from the repository root")
    try:
        params = parse_yaml(path.read_text()) or {}
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


def check_data_paths(params: dict[str, Any], root: Path) -> None:
    """Each ``data.<key>`` path must resolve (symlinks followed) inside ``root``: DVC tracks only
    files of the repository, so a file outside it could change without re-running anything."""
    for key in DATA_PATH_KEYS:
        value = (params.get("data") or {}).get(key)
        if value is None:
            continue
        resolved = (root / str(value)).resolve()
        if not resolved.is_relative_to(root):
            raise InputError(f"params.yaml data.{key}: {value} resolves to {resolved}, outside the repository "
                             f"{root}; copy the file into the repository (e.g. data/) and point data.{key} there")


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling path; on success move it onto ``target`` (file or folder).

    On any error (or Ctrl-C) the temporary is removed and ``target`` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent)) / target.name
    try:
        yield tmp
        if target.is_dir() and not target.is_symlink():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
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
