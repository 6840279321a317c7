"""Which code made an artefact: the git commit of a checkout, for the training report and the benchmark report."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any


def source_revision(directory: str | Path) -> dict[str, Any] | None:
    """The git commit ``directory`` is checked out at (short hash) and whether tracked files differ from it
    (``uncommitted_changes``), or None outside a git checkout or without git (an installed package, a container
    image)."""
    def git(*arguments: str) -> str:
        return subprocess.run(["git", "-C", str(directory), *arguments], capture_output=True, text=True, check=True,
                              timeout=10).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        changed = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "uncommitted_changes": changed}
