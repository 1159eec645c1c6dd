"""Locate and drive the ECH peers of ``test_curl_nss_ech.py``.

Our own ``ech`` command (``keygen``, ``serve``) runs through
:mod:`tests.harness.serve`; the others are:

* curl_cffi, libcurl built on BoringSSL (:func:`curl_get`);
* NSS ``tstclnt`` and ``certutil`` from Debian's ``libnss3-tools``
  (:func:`find_nss_tools`, :func:`run_tstclnt`; the database comes from
  :func:`tests.harness.pki.write_nss_db`).

A missing peer raises :class:`PeerMissingError` naming what to install; the
tests turn it into a failure, never a skip.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ech.config import ECHConfigList
from tests.harness.http import status_json
from tests.harness.pki import NSS_INSTALL

if TYPE_CHECKING:
    from curl_cffi import CurlOpt

IO_TIMEOUT = 15.0
"""Seconds any one peer run or server start may take."""

CURL_CFFI_INSTALL = "`.venv/bin/pip install 'curl_cffi>=0.17'`"

_CURL_RETRY_CONFIGS = re.compile(r"ECH: retry_configs (?P<b64>[A-Za-z0-9+/=]+)")
_NSS_RETRY_CONFIGS = re.compile(
    # tstclnt wraps the base64 at 64 columns.
    r"Received ECH retry_configs:[ \t]*\n(?P<b64>(?:[A-Za-z0-9+/=]+\r?\n?)+)"
)


class PeerMissingError(RuntimeError):
    """A peer program or package is not installed; the message says how to."""


# -- curl_cffi (libcurl + BoringSSL) -----------------------------------------------


def require_curl_cffi() -> str:
    """curl_cffi's version, if it is installed and knows ``CURLOPT_ECH``."""
    try:
        from curl_cffi import CurlOpt
    except ImportError as error:
        raise PeerMissingError(
            f"curl_cffi is not installed ({error}); install it with {CURL_CFFI_INSTALL}"
        ) from None
    if not hasattr(CurlOpt, "ECH"):
        raise PeerMissingError(
            f"curl_cffi {version('curl_cffi')} has no CurlOpt.ECH; upgrade with "
            f"{CURL_CFFI_INSTALL}"
        )
    return version("curl_cffi")


@dataclass(frozen=True)
class CurlOutcome:
    """One curl request: the body, the error if it failed, curl's info log."""

    body: bytes
    error_code: int | None
    error: str
    log: str

    def page(self) -> dict[str, Any]:
        """The status page JSON; fails with curl's log if the request failed."""
        if self.error_code is not None:
            raise AssertionError(
                f"curl failed ({self.error_code}): {self.error}\n{self.log}"
            )
        return status_json(self.body)

    def retry_configs(self) -> ECHConfigList | None:
        """The list from curl's ``ECH: retry_configs <b64>`` log line."""
        match = _CURL_RETRY_CONFIGS.search(self.log)
        return ECHConfigList.from_base64(match["b64"]) if match else None


def curl_perform(
    url: str, *, cafile: Path, options: Sequence[tuple[CurlOpt, object]]
) -> CurlOutcome:
    """GET ``url`` over HTTP/1.1 with curl_cffi, trusting ``cafile``.

    ``options`` are the caller's own (ECH mode, resolve or DoH, curves);
    curl's verbose log is collected for assertions on what it reports.
    """
    require_curl_cffi()
    from curl_cffi import Curl, CurlError, CurlHttpVersion
    from curl_cffi import CurlOpt as Opt

    body = io.BytesIO()
    log: list[str] = []

    def on_debug(kind: int, data: bytes) -> None:
        if kind == 0:  # CURLINFO_TEXT
            log.append(data.decode("utf-8", "replace"))

    curl = Curl()
    try:
        common: list[tuple[CurlOpt, object]] = [
            (Opt.URL, url.encode()),
            (Opt.CAINFO, str(cafile).encode()),
            (Opt.TIMEOUT_MS, int(IO_TIMEOUT * 1000)),
            (Opt.HTTP_VERSION, CurlHttpVersion.V1_1),
            (Opt.WRITEDATA, body),
            (Opt.VERBOSE, 1),
            (Opt.DEBUGFUNCTION, on_debug),
        ]
        for option, value in (*common, *options):
            code = curl.setopt(option, value)
            if code != 0:
                raise AssertionError(
                    f"curl_cffi refused {option.name}={value!r} (error {code}); "
                    f"is its libcurl built with ECH? Reinstall with "
                    f"{CURL_CFFI_INSTALL}"
                )
        try:
            curl.perform()
        except CurlError as error:
            code = int(error.code)
            return CurlOutcome(body.getvalue(), code, str(error), "".join(log))
        return CurlOutcome(body.getvalue(), None, "", "".join(log))
    finally:
        curl.close()


def curl_get(
    url: str,
    *,
    resolve: str,
    cafile: Path,
    ech: Sequence[bytes],
    curves: str | None = None,
    http3: bool = False,
) -> CurlOutcome:
    """GET ``url`` with curl_cffi, setting ``CURLOPT_ECH`` to each of ``ech``.

    ``resolve`` is a ``CURLOPT_RESOLVE`` entry (``NAME:PORT:ADDRESS``);
    ``curves`` sets ``CURLOPT_SSL_EC_CURVES`` (BoringSSL sends a key share
    for the first one only, so an unsupported first curve forces HRR);
    ``http3`` makes it HTTP/3 only (ngtcp2 and nghttp3 under libcurl).
    """
    require_curl_cffi()
    from curl_cffi import CurlHttpVersion
    from curl_cffi import CurlOpt as Opt

    options: list[tuple[CurlOpt, object]] = [
        (Opt.RESOLVE, [resolve.encode()]),
        *((Opt.ECH, value) for value in ech),
    ]
    if http3:
        options.append((Opt.HTTP_VERSION, CurlHttpVersion.V3ONLY))
    if curves is not None:
        options.append((Opt.SSL_EC_CURVES, curves.encode()))
    return curl_perform(url, cafile=cafile, options=options)


# -- NSS tstclnt --------------------------------------------------------------------


@dataclass(frozen=True)
class NSSTools:
    """Paths of the NSS command line tools."""

    tstclnt: str
    certutil: str


def find_nss_tools() -> NSSTools:
    """``tstclnt`` and ``certutil`` on PATH (Debian: /usr/bin)."""
    found = {name: shutil.which(name) for name in ("tstclnt", "certutil")}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        raise PeerMissingError(
            f"NSS tools not found: {', '.join(missing)}; install them with "
            f"{NSS_INSTALL}"
        )
    return NSSTools(tstclnt=str(found["tstclnt"]), certutil=str(found["certutil"]))


def _run(args: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=IO_TIMEOUT,
        check=False,
        stdin=subprocess.DEVNULL,
        **kwargs,
    )


@dataclass(frozen=True)
class TstclntOutcome:
    """One tstclnt run."""

    returncode: int
    stdout: bytes
    stderr: str

    def page(self) -> dict[str, Any]:
        """The status page JSON; fails with tstclnt's output if it failed."""
        if self.returncode != 0:
            raise AssertionError(
                f"tstclnt exited {self.returncode}:\n{self.stderr}\n{self.stdout!r}"
            )
        return status_json(self.stdout)

    def retry_configs(self) -> ECHConfigList | None:
        """The list after tstclnt's ``Received ECH retry_configs:`` line."""
        match = _NSS_RETRY_CONFIGS.search(self.stderr)
        if match is None:
            return None
        return ECHConfigList.from_base64("".join(match["b64"].split()))


def run_tstclnt(
    tools: NSSTools,
    db: str,
    port: int,
    server_name: str,
    request: Path,
    *extra: str,
) -> TstclntOutcome:
    """``tstclnt`` to 127.0.0.1:``port`` (TLS 1.3 only), sending ``request``.

    The request goes in with ``-A FILE``, not on stdin: tstclnt 3.87 spins
    forever on a hung-up stdin pipe (poll says HUP, it waits for READ).
    """
    args = [
        tools.tstclnt,
        "-d",
        db,
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-a",
        server_name,
        "-V",
        "tls1.3:tls1.3",
        "-A",
        str(request),
        *extra,
    ]
    result = subprocess.run(
        args,
        capture_output=True,
        timeout=IO_TIMEOUT,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    return TstclntOutcome(
        result.returncode, result.stdout, result.stderr.decode("utf-8", "replace")
    )
