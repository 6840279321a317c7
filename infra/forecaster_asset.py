"""The forecaster Lambda's code asset: the ``scaling`` package and the three kernel modules it imports.

``lambda_.Code.from_asset(str(build_forecaster_asset(out_dir)))`` in the CDK construct. The handler
path imports nothing outside the standard library, boto3, this package and ``core.settings`` /
``core.errors`` (pure standard library; no numpy), so the asset is a few tens of kilobytes and the
function starts fast.
"""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HANDLER = "scaling.lambda_handler.handler"
KERNEL_MODULES = ("__init__.py", "errors.py", "settings.py")
"""The modules of ``core`` the forecaster imports (``core.settings`` and what it needs)."""


def build_forecaster_asset(out_dir: str | Path) -> Path:
    """Copy ``scaling`` and the kernel modules it needs into ``out_dir`` (replacing what was there)."""
    out = Path(out_dir)
    for name, modules in (("scaling", None), ("core", KERNEL_MODULES)):
        target = out / name
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        sources = sorted((ROOT / name).glob("*.py")) if modules is None else [ROOT / name / m for m in modules]
        for source in sources:
            shutil.copyfile(source, target / source.name)
    return out
