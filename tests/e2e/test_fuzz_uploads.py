"""A Hypothesis-driven fuzzer for the upload API's multipart forms, against a real server.

Every field ImageKit defines, and others, with values a client should never send: numbers in
other scripts' digits and with spaces, JSON nested deeper than parsers go and huge JSON,
duplicate and missing fields, names and filenames in odd encodings, binary junk, broken
multipart framing. Often with a valid credential (v1 signature, v2 JWT over exactly the fields
sent, or the private key), so the fuzz reaches the parameters behind authentication.

Invariants, for every example: no 5xx; ImageKit's error body on every refusal; nothing left in
the temporary folder; nothing stored by a refusal. For the run: no traceback in the server's
log, and the server's memory bounded.

A fixed seed and ``FUZZ_EXAMPLES`` examples per test (default 40 x 5 = 200 requests: CI); set it
higher for a deeper run, e.g. ``FUZZ_EXAMPLES=5000``.
"""

import base64
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from app.core import credentials
from app.core.keys import KeyPair
from tests.support.apps import new_private_key, new_public_key
from tests.support.samples import png, v1_signature
from tests.support.servers import Server, clean_env, peak_rss_kib, running
from tests.support.uploads import leftovers

pytestmark = pytest.mark.e2e

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))
SEED = 20261128
BOUNDARY = "fuzzboundary"

FIELDS = [
    "fileName",
    "folder",
    "useUniqueFileName",
    "overwriteFile",
    "overwriteAITags",
    "overwriteTags",
    "overwriteCustomMetadata",
    "isPrivateFile",
    "isPublished",
    "tags",
    "customCoordinates",
    "customMetadata",
    "responseFields",
    "description",
    "checks",
    "extensions",
    "transformation",
    "webhookUrl",
    "expire",
    "token",
    "signature",
    "publicKey",
]

#: Digits of other scripts, superscripts, full-width: str.isdigit() says yes to many of them.
ODD_DIGITS = st.text(
    alphabet=st.sampled_from(
        "0123456789 \u00b2\u00b3\u00b9\u0660\u0661\u0669\u06f1\u0967\uff11\uff19\u2460\u00bd-+."
    ),
    max_size=14,
)
DEEP = st.integers(min_value=1, max_value=30_000).map(lambda n: "[" * n + "]" * n)
HUGE_JSON = st.integers(min_value=1, max_value=5000).map(
    lambda n: json.dumps({f"k{i}": "v" * 10 for i in range(n)})
)
#: JSON of any shape and nesting, and near-misses of ImageKit's shapes for the JSON fields.
NESTED_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=60,
)
EXTENSION_NAMES = st.sampled_from(
    [
        "remove-bg",
        "google-auto-tagging",
        "aws-auto-tagging",
        "ai-auto-description",
        "ai-tasks",
        "saved-extension",
        "x",
    ]
)
POST_TYPES = st.sampled_from(["transformation", "gif-to-video", "thumbnail", "abs", "x"])
PROTOCOLS = st.sampled_from(["hls", "dash", "x"])
JSON_SHAPES = st.one_of(
    NESTED_JSON,
    st.lists(st.fixed_dictionaries({"name": EXTENSION_NAMES}, optional={"options": NESTED_JSON})),
    st.fixed_dictionaries(
        {},
        optional={
            "pre": st.one_of(st.text(max_size=10), NESTED_JSON),
            "post": st.lists(
                st.fixed_dictionaries(
                    {
                        "type": st.sampled_from(
                            ["transformation", "gif-to-video", "thumbnail", "abs", "x"]
                        )
                    },
                    optional={
                        "value": NESTED_JSON,
                        "protocol": st.sampled_from(["hls", "dash", "x"]),
                    },
                ),
                max_size=12,
            ),
        },
    ),
    st.dictionaries(st.text(max_size=8), NESTED_JSON, max_size=110),
).map(json.dumps)
VALUES = st.one_of(
    JSON_SHAPES,
    st.text(max_size=40),
    ODD_DIGITS,
    DEEP,
    HUGE_JSON,
    st.sampled_from(["true", "false", "", " ", "null", "{}", "[]", "1,2,3,4", "/a/b", "../.."]),
    st.text(min_size=1000, max_size=70_000, alphabet="ab,%/ "),
    st.just('"file.size" < 1mb AND ' * 300),
)


@dataclass
class Target:
    server: Server
    pair: KeyPair
    storage: Path


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    root = tmp_path_factory.mktemp("fuzz")
    public, private = new_public_key(), new_private_key()
    env = clean_env(
        IMAGEKIT_PUBLIC_KEY=public,
        IMAGEKIT_PRIVATE_KEY=private,
        UPLOAD_AUTH_STORAGE_DIR=str(root / "store"),
        # v1 signatures made here have no grant: accepted, to fuzz what lies behind them
        UPLOAD_AUTH_ACCEPT_UNBOUND_V1="true",
        UPLOAD_AUTH_ACCESS_LOG="false",
    )
    with running(["upload-api"], env=env, log=root / "server.log") as server:
        yield Target(server, KeyPair(public, private.encode()), root / "store")
    assert "Traceback" not in server.output()


@st.composite
def forms(draw: st.DrawFn) -> tuple[list[tuple[str, bytes]], bytes | None, str | None]:
    """Fields (names and raw values, duplicates allowed), a file part (or none) and its
    filename (or none: a text part)."""
    names = draw(st.lists(st.one_of(st.sampled_from(FIELDS), st.text(max_size=12)), max_size=8))
    fields = []
    for name in names:
        value = draw(st.one_of(VALUES.map(str.encode), st.binary(max_size=64)))
        fields.append((name, value))
    file = draw(
        st.one_of(
            st.none(),
            st.just(png(3, 2)),
            st.binary(max_size=2048),
            st.just(base64.b64encode(png())),
            st.just(b"data:image/png;base64," + base64.b64encode(png())),
            st.just(b"https://example.com/a.png"),
            st.just(b"<html><script>alert(1)</script></html>"),
        )
    )
    filename = draw(
        st.one_of(
            st.none(),
            st.sampled_from(["a.png", "", "../../x.png", "a.PNG", "a", ".png", "a.exe"]),
            st.text(max_size=40),
        )
    )
    return fields, file, filename


def multipart(
    fields: list[tuple[str, bytes]], file: bytes | None, filename: str | None, framing: str
) -> bytes:
    parts = []
    for name, value in fields:
        quoted = name.replace('"', "%22").replace("\r", "").replace("\n", "")
        parts.append(
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{quoted}"\r\n\r\n'.encode()
            + value
            + b"\r\n"
        )
    if file is not None:
        disposition = 'form-data; name="file"'
        if filename is not None:
            disposition += '; filename="' + filename.replace('"', "%22") + '"'
        parts.append(
            f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode(
                "utf-8", "surrogatepass"
            )
            + file
            + b"\r\n"
        )
    body = b"".join(parts)
    if framing == "good":
        return body + f"--{BOUNDARY}--\r\n".encode()
    if framing == "unterminated":
        return body
    if framing == "bare-lf":
        return (body + f"--{BOUNDARY}--\n".encode()).replace(b"\r\n", b"\n")
    return body[: len(body) // 2]


def authenticated(
    target: Target, fields: list[tuple[str, bytes]], how: str
) -> tuple[list[tuple[str, bytes]], dict[str, str]]:
    """The fields and headers with a credential of the chosen kind added."""
    pair = target.pair
    if how == "basic":
        raw = base64.b64encode(pair.private_key + b":").decode()
        return fields, {"Authorization": f"Basic {raw}"}
    if how == "v1":
        token, expire = credentials.uuid4(), int(time.time()) + 1800
        signature = v1_signature(pair.private_key, token, expire)
        extra = [("publicKey", pair.public_key), ("token", token), ("expire", str(expire))]
        return [
            *fields,
            *((k, v.encode()) for k, v in extra),
            ("signature", signature.encode()),
        ], {}
    if how == "v2":
        text = {}
        for name, value in fields:
            try:
                text[name] = value.decode("utf-8")
            except UnicodeDecodeError:
                return fields, {}
        text.pop("token", None)
        try:
            token = credentials.issue_v2(pair, text, now=int(time.time()), ttl=600)
        except ValueError:
            return fields, {}
        return [*((k, v.encode()) for k, v in text.items()), ("token", token.encode())], {}
    return fields, {}


def post(target: Target, version: int, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(
        f"{target.server.url}/api/v{version}/files/upload",
        content=body,
        headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}", **headers},
        timeout=30,
    )


def check_invariants(target: Target, response: httpx.Response, before: set[Path]) -> None:
    assert response.status_code < 500 or response.status_code == 503, response.text
    if response.content == b"Invalid HTTP request received.":  # the HTTP parser's own 400
        assert response.status_code == 400
    elif response.status_code != 200:
        body = response.json()
        assert set(body) == {"message", "help"}, body
        stored = {p for p in (target.storage / "files").rglob("*") if p.is_file()}
        assert stored == before, "a refusal stored something"
    assert leftovers(target.storage) == []


def _stored(target: Target) -> set[Path]:
    return {p for p in (target.storage / "files").rglob("*") if p.is_file()}


FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)


@pytest.mark.parametrize("how", ["none", "basic", "v1", "v2"])
def test_forms_never_get_a_5xx(target: Target, how: str) -> None:
    """Random forms, unauthenticated and with each kind of valid credential."""

    @seed(SEED)
    @given(
        form=forms(),
        version=st.sampled_from([1, 2]),
        framing=st.sampled_from(["good", "good", "good", "unterminated", "bare-lf", "cut"]),
    )
    @FUZZ_SETTINGS
    def run(form: Any, version: int, framing: str) -> None:
        fields, file, filename = form
        fields, headers = authenticated(target, fields, how)
        before = _stored(target)
        response = post(target, version, multipart(fields, file, filename, framing), headers)
        check_invariants(target, response, before)

    run()


def test_odd_requests_never_get_a_5xx(target: Target) -> None:
    """Odd content types, Authorization headers and declared lengths around the body."""

    @seed(SEED)
    @given(
        content_type=st.one_of(
            st.sampled_from(
                [
                    "",
                    "multipart/form-data",
                    f"multipart/form-data; boundary={BOUNDARY}; charset=utf-16",
                    "multipart/form-data; boundary=" + "b" * 200,
                    "application/json",
                ]
            ),
            st.text(max_size=60).filter(lambda t: "\n" not in t and "\r" not in t),
        ),
        authorization=st.one_of(
            st.none(),
            st.text(max_size=60),
            st.binary(max_size=40).map(lambda b: "Basic " + base64.b64encode(b).decode()),
        ),
        body=st.binary(max_size=4096),
    )
    @FUZZ_SETTINGS
    def run(content_type: str, authorization: str | None, body: bytes) -> None:
        headers = {"Content-Type": content_type}
        if authorization is not None:
            headers["Authorization"] = authorization
        if not all(value.isascii() for value in headers.values()):
            return  # httpx sends ASCII header values only
        before = _stored(target)
        try:
            response = httpx.post(
                target.server.url + "/api/v1/files/upload",
                content=body,
                headers=headers,
                timeout=30,
            )
        except httpx.LocalProtocolError:
            return  # httpx will not send that header: nor will any client
        check_invariants(target, response, before)

    before = peak_rss_kib(target.server.process.pid)
    run()
    assert peak_rss_kib(target.server.process.pid) - before < 64 * 1024


@pytest.mark.parametrize("field", FIELDS)
def test_each_field_never_gets_a_5xx(target: Target, field: str) -> None:
    """An otherwise good upload, with one field given hostile values (also twice), behind
    each kind of credential: every field's parsing is reached."""

    @seed(SEED)
    @given(
        value=st.one_of(VALUES.map(str.encode), st.binary(max_size=64)),
        twice=st.booleans(),
        how=st.sampled_from(["v1", "v2", "basic"]),
        version=st.sampled_from([1, 2]),
    )
    @settings(
        max_examples=max(10, EXAMPLES // 2),
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(value: bytes, twice: bool, how: str, version: int) -> None:
        fields = [("fileName", b"a.png"), (field, value)] + ([(field, value)] if twice else [])
        fields, headers = authenticated(target, fields, how)
        before = _stored(target)
        response = post(target, version, multipart(fields, png(), "a.png", "good"), headers)
        check_invariants(target, response, before)

    run()
