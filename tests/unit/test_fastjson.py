"""``fastjson.dumps`` (orjson, with the standard library where orjson refuses) against
``json.dumps``, the library it stands in for: the same JSON for every value JSON can hold."""

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from app.core.fastjson import dumps

#: What the service encodes: strings (any code point, lone surrogates included, as a client can
#: send them as ``\ud800``), integers of any size, floats JSON can write, and nesting.
values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(st.characters(codec=None, exclude_categories=())),
    ),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(st.characters(codec=None), max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def reference(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8", "surrogatepass"
    )


@given(values)
def test_the_same_value_back_as_json_reads_it(value: Any) -> None:
    """What fastjson writes, ``json.loads`` reads back as the value ``json.dumps`` writes."""
    ours = dumps(value)
    assert json.loads(ours) == json.loads(json.dumps(value))


_INT64 = st.integers(min_value=-(2**63), max_value=2**64 - 1)


@given(st.dictionaries(st.text(max_size=8), st.text(max_size=8) | _INT64, max_size=5))
def test_compact_and_byte_identical_for_plain_values(value: dict[str, Any]) -> None:
    """For the strings and 64-bit integers of credentials and log lines, the very same bytes
    as compact ``json.dumps`` without ASCII escaping (UTF-8). (Past that, the standard
    library's own output, ASCII-escaped: the next test.)"""
    assert dumps(value) == reference(value)


def test_the_corners_orjson_refuses_go_through_the_standard_library() -> None:
    """A lone surrogate and an integer past 64 bits: still JSON, as json.dumps writes them."""
    for value in ({"name": "a\ud800b"}, {"size": 2**70}, [-(2**64)]):
        assert json.loads(dumps(value)) == value
        assert dumps(value) == json.dumps(value, separators=(",", ":")).encode()


def test_default_converts_what_json_has_no_type_for() -> None:
    class Odd:
        def __str__(self) -> str:
            return "odd"

    assert dumps({"x": Odd()}, default=str) == b'{"x":"odd"}'
