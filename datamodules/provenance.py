"""Where a result came from: the code's git commit, whether its tree was dirty, library
versions and the command line, as every ``metrics.json`` (and prepare's ``manifest.json``)
records them.

Nothing here may fail a run: outside a git checkout, without a ``git`` binary or with a package
that is not installed, the field is ``None``.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

CODE_ROOT = Path(__file__).resolve().parent.parent  # the checkout the running code lives in
RUN_PACKAGES = ("torch", "lightning", "ffcv", "numpy")


def package_versions(dists: tuple[str, ...] | list[str]) -> dict[str, str | None]:
    """Python's version and each installed distribution's (``None`` when not installed)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for dist in dists:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return versions


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True,
            text=True,
            timeout=10,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},  # never take the index lock
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def git_state(root: str | Path = CODE_ROOT) -> dict[str, Any]:
    """``{"commit": sha, "dirty": bool}`` of the checkout at ``root``; ``None`` values outside one.

    Dirty means tracked files differ from the commit (as ``git describe --dirty``); untracked
    files (run folders, caches, scratch) do not count.
    """
    commit = _git(Path(root), "rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    status = _git(Path(root), "status", "--porcelain", "--untracked-files=no")
    return {"commit": commit.strip(), "dirty": None if status is None else bool(status.strip())}


def provenance(
    root: str | Path = CODE_ROOT, extra_versions: dict[str, str | None] | None = None
) -> dict[str, Any]:
    """The commit, versions (``RUN_PACKAGES``, then ``extra_versions``) and command line of this
    process."""
    return {
        "git": git_state(root),
        "versions": {**package_versions(RUN_PACKAGES), **(extra_versions or {})},
        "argv": list(sys.argv),
        "cwd": os.getcwd(),
    }


def dpkg_version(package: str) -> str | None:
    """A Debian package's installed version (``None`` when not installed or without dpkg)."""
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", package],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None
