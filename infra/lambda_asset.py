"""The Lambda asset directory: built without Docker by ``infra.packaging``, rebuilt only when stale.

``cdk synth`` (and so ``cdk deploy``) calls ``lambda_asset_dir``: it returns the directory given by
the ``lambdaAssetDir`` context, or ``build/lambda-<arch>`` after (re)building it when its inputs
changed: the code under ``core/`` and ``recommender/``, ``pyproject.toml`` (the ``serve`` dependencies)
and the architecture. The fingerprint of the last build sits beside it in ``build/lambda-<arch>.fingerprint``.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from infra.config import REPO_ROOT, InfraSettings
from infra.errors import InfraConfigError
from infra.packaging import PACKAGES

HANDLER_MODULE = Path("recommender") / "handler.py"


def lambda_asset_dir(settings: InfraSettings, root: Path = REPO_ROOT) -> Path:
    """The directory the function's code is taken from (built now if needed)."""
    if settings.lambda_asset_dir:
        given = Path(settings.lambda_asset_dir)
        path = given if given.is_absolute() else root / given
        if not (path / HANDLER_MODULE).is_file():
            raise InfraConfigError(
                f"context 'lambdaAssetDir': {path} has no {HANDLER_MODULE} (build it with infra.packaging)"
            )
        return path
    return ensure_built(root / "build" / f"lambda-{settings.lambda_pip_arch}", settings.lambda_pip_arch, root)


def fingerprint(arch: str, root: Path = REPO_ROOT) -> str:
    """sha256 over the architecture, ``pyproject.toml`` and every file of the packages in the asset."""
    digest = hashlib.sha256(f"arch={arch}\n".encode())
    inputs = [root / "pyproject.toml"]
    for package in PACKAGES:
        inputs += sorted(p for p in (root / package).rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    for path in inputs:
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def ensure_built(out_dir: Path, arch: str, root: Path = REPO_ROOT) -> Path:
    """Build the asset into ``out_dir`` unless the fingerprint of its inputs is unchanged."""
    stamp = out_dir.with_name(out_dir.name + ".fingerprint")
    want = fingerprint(arch, root)
    if (out_dir / HANDLER_MODULE).is_file() and stamp.is_file() and stamp.read_text().strip() == want:
        return out_dir
    from infra.packaging import build_lambda_asset

    print(f"building the Lambda asset for {arch} into {out_dir} (no Docker) ...", file=sys.stderr, flush=True)
    stamp.unlink(missing_ok=True)
    built = Path(build_lambda_asset(out_dir, arch=arch))
    if not (built / HANDLER_MODULE).is_file():
        raise InfraConfigError(f"the Lambda asset built into {built} has no {HANDLER_MODULE}")
    stamp.write_text(want + "\n")
    return built
