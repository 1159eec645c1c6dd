"""The status page's JSON: what ``json.dumps(..., indent=2)`` gives, made cheaply."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from ech.serve.status_page import flat_json

scalars = st.one_of(st.none(), st.booleans(), st.text())


@given(st.dictionaries(st.text(), scalars))
def test_flat_json_is_json_dumps_with_indent_2(
    fields: dict[str, str | bool | None],
) -> None:
    assert flat_json(fields) == json.dumps(fields, indent=2).encode() + b"\n"


def test_flat_json_escapes_what_json_escapes() -> None:
    fields: dict[str, str | bool | None] = {'a "b"\n': "é\u2028\x00\\", "c": None}
    assert json.loads(flat_json(fields)) == fields
