"""The distribution a user installs works: wheel and sdist, in clean venvs.

``python -m build`` makes the sdist and then the wheel *from the sdist*, so
a file missing from the sdist breaks the build here. Each artifact is then
installed into a fresh virtual environment that cannot see this one's
packages (no ``--system-site-packages``): the install pulls the declared
dependencies from the package index (pip's cache makes that quick), so a
missing dependency or package file fails the smoke test. The smoke test
is what a user does first: ``ech --help``, ``ech keygen``, ``ech demo``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
VERSION = PYPROJECT["project"]["version"]


def run(*args: str | Path, cwd: Path | None = None) -> str:
    """Run a command away from this checkout (cwd, PYTHONPATH), so that the
    installed copy is what gets imported."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
        env=env,
        check=False,
    )
    assert result.returncode == 0, (args, result.stdout[-2000:], result.stderr[-4000:])
    return result.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built sdist and wheel, and a wheelhouse of their dependencies.

    The dependencies, and the build backend the sdist needs, are fetched
    from the index once, so the two clean installs resolve offline from the
    same files.
    """
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--outdir", out, ROOT, cwd=out)
    (wheel,) = out.glob("*.whl")
    house = out / "house"
    pip = (sys.executable, "-m", "pip", "--disable-pip-version-check")
    run(*pip, "wheel", "--quiet", "--wheel-dir", house, wheel, cwd=out)
    backend = PYPROJECT["build-system"]["requires"]
    run(*pip, "download", "--quiet", "--dest", house, *backend, cwd=out)
    return out


def test_version_has_one_source() -> None:
    import ech

    assert ech.__version__ == VERSION
    assert f"## [{VERSION}]" in (ROOT / "CHANGELOG.md").read_text()


@pytest.mark.parametrize("kind", ["whl", "tar.gz"])
def test_artifact_installs_and_runs(dist: Path, kind: str, tmp_path: Path) -> None:
    (artifact,) = dist.glob(f"tls_ech-{VERSION}*.{kind}")
    env = tmp_path / "venv"
    venv.create(env, with_pip=True, system_site_packages=False)
    bin_ = env / "bin"
    pip = (bin_ / "pip", "install", "--quiet", "--disable-pip-version-check")
    run(*pip, "--no-index", "--find-links", dist / "house", artifact, cwd=tmp_path)
    # Imported from the installed copy, not this checkout.
    where, version = run(
        bin_ / "python",
        "-c",
        "import ech; print(ech.__file__, ech.__version__)",
        cwd=tmp_path,
    ).split()
    assert where.startswith(str(env)), where
    assert version == VERSION
    assert "keygen" in run(bin_ / "ech", "--help", cwd=tmp_path)
    b64 = run(bin_ / "ech", "keygen", "--public-name", "public.example",
              "-o", tmp_path / "ech.pem", cwd=tmp_path)  # fmt: skip
    assert b64.strip().startswith("AE"), b64
    assert (tmp_path / "ech.pem").stat().st_mode & 0o777 == 0o600
    assert "all checks passed" in run(bin_ / "ech", "demo", cwd=tmp_path)
