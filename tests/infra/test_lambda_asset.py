"""The Lambda asset directory is rebuilt only when its inputs change."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.config import InfraSettings
from infra.errors import InfraConfigError
from infra.lambda_asset import ensure_built, fingerprint, lambda_asset_dir


def _project(root: Path) -> Path:
    (root / "recommender").mkdir(parents=True)
    (root / "recommender" / "handler.py").write_text("def lambda_handler(event, context):\n    return {}\n")
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    return root


def test_the_fingerprint_follows_code_dependencies_and_architecture(tmp_path: Path) -> None:
    root = _project(tmp_path)
    before = fingerprint("x86_64", root)
    assert fingerprint("x86_64", root) == before
    assert fingerprint("aarch64", root) != before
    (root / "recommender" / "handler.py").write_text("# changed\n")
    after_code = fingerprint("x86_64", root)
    assert after_code != before
    (root / "pyproject.toml").write_text("[project]\nname = 'y'\n")
    assert fingerprint("x86_64", root) != after_code
    (root / "recommender" / "__pycache__").mkdir()
    (root / "recommender" / "__pycache__" / "handler.cpython-311.pyc").write_bytes(b"\0")
    assert fingerprint("x86_64", root) == fingerprint("x86_64", root)


def test_a_fresh_build_is_reused_as_it_is(tmp_path: Path) -> None:
    root = _project(tmp_path / "repo")
    out = root / "build" / "lambda-x86_64"
    (out / "recommender").mkdir(parents=True)
    (out / "recommender" / "handler.py").write_text("built\n")
    (out / "marker").write_text("kept")
    (root / "build" / "lambda-x86_64.fingerprint").write_text(fingerprint("x86_64", root) + "\n")
    assert ensure_built(out, "x86_64", root) == out
    assert (out / "marker").read_text() == "kept"


def test_a_given_asset_directory_must_hold_the_handler(tmp_path: Path) -> None:
    settings = InfraSettings(lambda_asset_dir=str(tmp_path))
    with pytest.raises(InfraConfigError, match="lambdaAssetDir"):
        lambda_asset_dir(settings, tmp_path)
    (tmp_path / "recommender").mkdir()
    (tmp_path / "recommender" / "handler.py").write_text("")
    assert lambda_asset_dir(settings, tmp_path) == tmp_path
