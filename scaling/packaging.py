"""The forecaster Lambda's code asset: a directory holding only the ``scaling`` package.

``lambda_.Code.from_asset(str(build_forecaster_asset(out_dir)))`` in the CDK construct. The handler
path imports nothing outside the standard library, boto3 and this package (no numpy), so the
asset is a few tens of kilobytes and the function starts fast.
"""

from __future__ import annotations

import shutil
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
HANDLER = "scaling.lambda_handler.handler"


def build_forecaster_asset(out_dir: str | Path) -> Path:
    """Copy the package's modules into ``out_dir/scaling`` (replacing what was there); return ``out_dir``."""
    out = Path(out_dir)
    target = out / "scaling"
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for source in sorted(PACKAGE_DIR.glob("*.py")):
        shutil.copyfile(source, target / source.name)
    return out
