"""Installs into an existing environment keep its torch; setup.sh installs the exact pins (issue 15).

pyproject.toml declares compatible ranges and constraints.txt holds the tested pins. The
resolution test asks pip itself (``--dry-run --report``) what ``pip install -e .`` would install
into a NEW venv that holds another torch / torchvision build than the pinned one. Offline: every
other dependency is visible to that venv as already installed (the project venv's own
distributions, exposed through a ``.pth`` file, torch and torchvision left out), so pip needs no
index (``--no-index``) and no build-isolation download. With the old ``torch==2.14.1`` pin the
resolution fails (pip would have to fetch torch 2.14.1); with the ranges torch stays.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]

# "another build": neither is on this disk, so pip could not even fetch them again
OTHER_TORCH, OTHER_TORCHVISION = "2.13.0+cu126", "0.28.0+cu126"


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    return pins


def _requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs += extra
    return [Requirement(r) for r in reqs]


def test_pyproject_declares_ranges_not_pins():
    for req in _requirements():
        assert not any(s.operator in ("==", "===") for s in req.specifier), req
    torch = next(r for r in _requirements() if r.name == "torch")
    assert torch.specifier.contains("2.14.1") and torch.specifier.contains(OTHER_TORCH)


def test_constraints_pin_every_requirement_within_its_range():
    pins = _pins()
    for req in _requirements():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} has no pin in constraints.txt"
        assert req.specifier.contains(pins[name], prereleases=True), (req, pins[name])


def test_venv_holds_exactly_the_pins():
    """What setup.sh installed is what constraints.txt says (regenerate it after an upgrade)."""
    wrong = {}
    for name, version in _pins().items():
        try:
            installed = md.version(name)
        except md.PackageNotFoundError:
            installed = None
        if installed != version:
            wrong[name] = (version, installed)
    assert not wrong, f"constraints.txt vs .venv (pinned, installed): {wrong}"


def test_setup_installs_with_the_constraints():
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    assert 'pip install -c constraints.txt -e ".[dev]"' in setup  # its output goes to a log
    assert "constraints.txt" in setup.split("stamp=", 1)[1].splitlines()[0]  # re-install on change


def _fake_dist(site: Path, name: str, version: str, requires: list[str]) -> None:
    info = site / f"{name}-{version}.dist-info"
    info.mkdir()
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"Requires-Dist: {r}" for r in requires]
    (info / "METADATA").write_text("\n".join(lines) + "\n")
    (info / "INSTALLER").write_text("pip\n")
    (info / "RECORD").write_text("")


def _expose_project_venv_without_torch(deps: Path) -> None:
    """Symlink every entry of this venv's site-packages but torch's, torchvision's and ours."""
    site = Path(md.distribution("torch").locate_file(""))
    left_out = {"__editable__.wsl_scale-0.1.0.pth", "__editable___wsl_scale_0_1_0_finder.py"}
    for dist_name in ("torch", "torchvision", "wsl-scale"):
        dist = md.distribution(dist_name)
        left_out |= {Path(f).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
    deps.mkdir()
    for entry in site.iterdir():
        if entry.name not in left_out and not entry.name.endswith(".pth"):
            (deps / entry.name).symlink_to(entry)


@pytest.mark.slow
def test_pip_install_e_keeps_another_torch_build(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    _fake_dist(site, "torch", OTHER_TORCH, [])
    # torchvision's wheels pin the torch they were built against
    _fake_dist(site, "torchvision", OTHER_TORCHVISION, ["torch==2.13.0", "numpy", "pillow"])
    deps = tmp_path / "deps"
    _expose_project_venv_without_torch(deps)
    (site / "project_deps.pth").write_text(f"{deps}\n")

    report = tmp_path / "report.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    cmd = [str(python), "-m", "pip", "install", "--dry-run", "--report", str(report)]
    cmd += ["--no-index", "--no-build-isolation", "--quiet", "-e", str(ROOT)]
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]

    installs = {
        canonicalize_name(i["metadata"]["name"]): i["metadata"]["version"]
        for i in json.loads(report.read_text())["install"]
    }
    assert installs == {"wsl-scale": "0.1.0"}  # torch, torchvision and the rest are kept
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    versions = {canonicalize_name(d["name"]): d["version"] for d in json.loads(listed)}
    assert versions["torch"] == OTHER_TORCH and versions["torchvision"] == OTHER_TORCHVISION
