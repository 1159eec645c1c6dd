from __future__ import annotations

# Loader for the RFC 8448 ("Example Handshake Traces for TLS 1.3") test vectors.
#
# The data lives in ``tests/vectors/data/<name>.json``; available names are
# ``rfc8448_simple_1rtt`` (section 3), ``rfc8448_resumption`` (section 4) and
# ``rfc8448_hrr`` (section 5).  The transcription is verified by
# ``tests/vectors/check_rfc8448_data.py``.
import json
from pathlib import Path
from typing import cast

DATA_DIR = Path(__file__).resolve().parent / "data"
"""Directory holding the JSON vector files."""

NAMES = ("rfc8448_simple_1rtt", "rfc8448_resumption", "rfc8448_hrr")
"""The available vector sets."""

_TEXT_KEYS = ("source", "notes")


def _read(name: str) -> dict[str, object]:
    """Read and parse one vector file.

    Args:
        name: Vector set name, with or without the ``.json`` suffix.

    Returns:
        The parsed top-level JSON object.

    Raises:
        ValueError: If ``name`` is not one of :data:`NAMES`.
    """
    stem = name.removesuffix(".json")
    if stem not in NAMES:
        raise ValueError(
            f"unknown RFC 8448 vector set {name!r}; expected one of {NAMES}"
        )
    raw = json.loads((DATA_DIR / f"{stem}.json").read_text(encoding="utf-8"))
    return cast("dict[str, object]", raw)


def load(name: str) -> dict[str, bytes | str]:
    """Load an RFC 8448 vector set with its hex values decoded.

    Args:
        name: One of :data:`NAMES` (e.g. ``"rfc8448_simple_1rtt"``); a trailing
            ``.json`` is accepted.

    Returns:
        A flat mapping: ``"source"`` and ``"notes"`` map to their text, and every
        key of the file's ``"steps"`` object (e.g. ``"client_hello"``,
        ``"server_handshake_write_key"``) maps to the decoded bytes.  The
        ``"labels"`` object is not included; use :func:`labels` for it.

    Raises:
        ValueError: If ``name`` is unknown or a value is not valid hex.
    """
    doc = _read(name)
    out: dict[str, bytes | str] = {key: str(doc[key]) for key in _TEXT_KEYS}
    steps = cast("dict[str, str]", doc["steps"])
    for key, value in steps.items():
        out[key] = bytes.fromhex(value)
    return out


def labels(name: str) -> dict[str, str]:
    """Return the RFC label text and context recorded for each value of a vector set.

    Args:
        name: One of :data:`NAMES`.

    Returns:
        A mapping from each key of :func:`load` (other than ``"source"`` and
        ``"notes"``) to a description of where the value appears in RFC 8448.

    Raises:
        ValueError: If ``name`` is unknown.
    """
    return dict(cast("dict[str, str]", _read(name)["labels"]))
