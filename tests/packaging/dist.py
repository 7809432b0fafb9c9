"""The Python distributions as a fresh clone builds them, and virtual environments to try them in.

Builds run on a copy of the checkout's files (tracked, and new ones .gitignore does not
exclude), never in the working tree: setuptools writes ``build/`` and ``*.egg-info`` next to
the sources, and a copy shows what a fresh clone yields, without local leftovers.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def checkout_copy(into: Path) -> Path:
    """Copy the files a clone of this checkout would have (as they are now) to ``into``."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):
        origin = ROOT / name
        if origin.is_file():  # a tracked file may be deleted in the working tree
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, into / name)
    return into


def build(source: Path, outdir: Path) -> tuple[Path, Path]:
    """``python -m build`` (sdist, then the wheel from it, as PyPI's users get them)."""
    result = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(outdir), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (wheel,) = outdir.glob("floorchannels-*.whl")
    (sdist,) = outdir.glob("floorchannels-*.tar.gz")
    return wheel, sdist


def venv_env(venv: Path) -> dict[str, str]:
    """The environment of a terminal with ``venv`` activated, and nothing of this test run's."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("DJANGO_")
        and name not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "REDIS_URL")
    }
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env
