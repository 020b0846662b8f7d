"""The upload form's reader: a form that arrives whole in one chunk is split by ``whole_form``
(a few ``bytes.find`` calls) instead of python-multipart's state machine. It must make of any
body exactly what python-multipart makes of it, or leave the body to python-multipart."""

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import TOKEN_CHARS, MultipartParser, parse_options_header
from urllib3 import encode_multipart_formdata

from app.upload_api import messages
from app.upload_api.form import UploadForm, boundary_of, read_form, whole_form

BOUNDARY = b"----formboundary7MA4YWxkTrZu0gW"

#: What a parser made of a body: its parts as (header lines, data), or the error's name.
Parts = list[tuple[list[tuple[bytes, bytes]], bytes]]
Made = Parts | str


def by_python_multipart(body: bytes, boundary: bytes = BOUNDARY) -> Made:
    parts: Parts = []
    field, value = bytearray(), bytearray()
    headers: list[tuple[bytes, bytes]] = []
    data = bytearray()

    def on_part_begin() -> None:
        headers.clear()
        data.clear()

    def on_header_field(chunk: bytes, start: int, end: int) -> None:
        field.extend(chunk[start:end])

    def on_header_value(chunk: bytes, start: int, end: int) -> None:
        value.extend(chunk[start:end])

    def on_header_end() -> None:
        headers.append((bytes(field), bytes(value)))
        field.clear()
        value.clear()

    def on_part_data(chunk: bytes, start: int, end: int) -> None:
        data.extend(chunk[start:end])

    def on_part_end() -> None:
        parts.append((list(headers), bytes(data)))

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    try:
        parser.write(body)
        parser.finalize()
    except MultipartParseError:
        return "error"
    return parts


def by_whole_form(body: bytes, boundary: bytes = BOUNDARY) -> Parts | None:
    found = whole_form(body, boundary)
    if found is None:
        return None
    return [(headers, body[start:end]) for headers, start, end in found]


def form(parts: list[tuple[list[bytes], bytes]], boundary: bytes = BOUNDARY) -> bytes:
    """A body in the usual shape: each part its header lines and its data."""
    out = b""
    for lines, data in parts:
        out += b"--" + boundary + b"\r\n" + b"".join(line + b"\r\n" for line in lines)
        out += b"\r\n" + data + b"\r\n"
    return out + b"--" + boundary + b"--\r\n"


def field(name: str, value: bytes) -> tuple[list[bytes], bytes]:
    return [f'Content-Disposition: form-data; name="{name}"'.encode()], value


FILE = (
    [
        b'Content-Disposition: form-data; name="file"; filename="cat.jpg"',
        b"Content-Type: image/jpeg",
    ],
    b"\xff\xd8\xff\xe0" + os.urandom(3000) + b"\r\n--" + BOUNDARY[:-1] + b"\r\n-",
)


# -- bodies clients send take the quick way, and make the same form ---------------------------


def test_a_usual_form_is_read_as_python_multipart_reads_it() -> None:
    body = form([field("fileName", b"cat.jpg"), FILE, field("tags", b"")])
    made = by_whole_form(body)
    assert made is not None
    assert made == by_python_multipart(body)
    assert [data for _, data in made] == [b"cat.jpg", FILE[1], b""]


def _httpx_body() -> tuple[bytes, bytes]:
    request = httpx.Request(
        "POST",
        "http://upload.test/",
        data={"fileName": "cat.jpg", "tags": "a,b"},
        files={"file": ("cat.jpg", FILE[1], "image/jpeg")},
    )
    boundary = request.headers["content-type"].split("boundary=")[1].encode()
    return request.read(), boundary


def _urllib3_body() -> tuple[bytes, bytes]:  # what requests (ImageKit's Python SDK) sends
    body, content_type = encode_multipart_formdata(
        {"fileName": "cat.jpg", "file": ("cat.jpg", FILE[1], "image/jpeg")}
    )
    return body, content_type.split("boundary=")[1].encode()


@pytest.mark.parametrize("make", [_httpx_body, _urllib3_body])
def test_the_bodies_of_common_clients_take_the_quick_way(make: Any) -> None:
    body, boundary = make()
    made = by_whole_form(body, boundary)
    assert made is not None
    assert made == by_python_multipart(body, boundary)


# -- any body: the same parts as python-multipart, or left to it ------------------------------

TOKEN = st.sampled_from([b"Content-Disposition", b"content-type", b"X-1"]) | st.text(
    alphabet="ABCXYZabcxyz0129!#$%&'*+-.^_`|~ :\r\n\t\x00\x7f", min_size=0, max_size=12
).map(str.encode)
VALUE = st.binary(max_size=40) | st.sampled_from(
    [b'form-data; name="file"; filename="a.png"', b"  spaced  ", b"", b"a\nb", b"a\rb"]
)
DATA = st.lists(
    st.sampled_from(
        [b"\r\n", b"--", BOUNDARY, BOUNDARY[:5], b"\r\n--" + BOUNDARY, b"-", b"\r", b"x" * 10]
    )
    | st.binary(max_size=20),
    max_size=8,
).map(b"".join)
HEADER_LINE = st.tuples(TOKEN, st.sampled_from([b":", b": ", b":   ", b""]), VALUE).map(b"".join)
PART = st.tuples(st.lists(HEADER_LINE, max_size=10), DATA)


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    body = form(draw(st.lists(PART, max_size=4)))
    body = draw(st.sampled_from([b"", b"\r\n", b"preamble\r\n", b"-"])) + body
    body += draw(st.sampled_from([b"", b"epilogue", b"\r\n--" + BOUNDARY + b"\r\n"]))
    for _ in range(draw(st.integers(0, 3))):  # bytes changed, dropped, or added anywhere
        at = draw(st.integers(0, len(body)))
        cut = draw(st.integers(0, 3))
        body = (
            body[:at]
            + draw(st.binary(max_size=3) | st.sampled_from([b"\r", b"\n"]))
            + body[at + cut :]
        )
    if draw(st.booleans()):
        body = body[: draw(st.integers(0, len(body)))]
    return body


DISPOSITION = b'Content-Disposition: form-data; name="a"'


@pytest.mark.parametrize(
    "body",
    [
        form([([DISPOSITION + b"\rb"], b"x")]),  # a lone CR in a header value
        form([([DISPOSITION] * 9, b"x")]),  # more header lines than python-multipart takes
        form([([DISPOSITION, b"X-Long: " + b"v" * 4300], b"x")]),  # a header line too long
        form([([b"Content-Disposition form-data"], b"x")]),  # no colon
        form([([b": form-data"], b"x")]),  # no name
        form([([b"Content Disposition: form-data"], b"x")]),  # not a token
        form([([], b"x")]),  # no header lines
        form([([b"Content-Disposition:\tform-data"], b"x")]),  # a tab is kept, spaces are not
        b"\r\n" + form([([DISPOSITION], b"x")]),  # before the first boundary
        form([([DISPOSITION], b"x")])[:-4],  # no closing boundary
        # the delimiter followed by neither CRLF nor "--" is data, not a boundary
        form([([DISPOSITION], b"a\r\n--" + BOUNDARY + b"XY" + DISPOSITION + b"\r\n\r\nzzz")]),
    ],
)
def test_bodies_off_the_usual_shape_are_read_as_python_multipart_reads_them(body: bytes) -> None:
    assert by_whole_form(body) in (None, by_python_multipart(body))


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies())
def test_any_body_is_read_as_python_multipart_reads_it_or_left_to_it(body: bytes) -> None:
    made = by_whole_form(body)
    if made is not None:
        assert made == by_python_multipart(body)


#: Parts in the usual shape: one to eight header lines ``token: value`` (any value without
#: CR or LF, any spaces after the colon), data that never holds the delimiter.
USUAL_LINE = st.tuples(
    st.text(alphabet=TOKEN_CHARS.decode(), min_size=1, max_size=20).map(str.encode),
    st.sampled_from([b":", b": ", b":   "]),
    st.binary(max_size=40).map(lambda value: value.replace(b"\r", b"").replace(b"\n", b"")),
).map(b"".join)
USUAL_PART = st.tuples(
    st.lists(USUAL_LINE, min_size=1, max_size=8),
    DATA.filter(lambda data: b"\r\n--" + BOUNDARY not in b"\r\n" + data),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(USUAL_PART, min_size=1, max_size=4))
def test_well_formed_parts_take_the_quick_way(parts: list[tuple[list[bytes], bytes]]) -> None:
    """Every body in the usual shape is read without python-multipart, to the same parts (so
    the test above is not vacuous)."""
    body = form(parts)
    made = by_whole_form(body)
    assert made is not None
    assert made == by_python_multipart(body)


# -- read_form: one chunk or many, the same form ---------------------------------------------


async def _read(body: bytes, chunk_size: int, tmp_path: Path) -> UploadForm | str:
    count = iter(range(10**6))

    def new_temp() -> tuple[int, Path]:
        path = tmp_path / f"spool-{next(count)}"
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), path

    async def chunks() -> AsyncIterator[bytes]:
        for at in range(0, len(body), chunk_size):
            yield body[at : at + chunk_size]

    try:
        return await read_form(
            chunks(), boundary=BOUNDARY, new_temp=new_temp, cap_for_head=lambda _: 10**9
        )
    except messages.UploadError as refusal:
        return f"{refusal.status} {refusal.reason}: {refusal.message}"


@pytest.mark.parametrize(
    "body",
    [
        form([field("fileName", b"cat.jpg"), FILE, field("tags", b"a,b")]),
        form([field("fileName", b"cat.jpg"), field("fileName", b"dog.jpg")]),  # a duplicate
        form([field("fileName", b"caf\xc3")]),  # not UTF-8
        form([([b"Content-Disposition: attachment"], b"x")]),
        form([field("file", b"aGVsbG8gd29ybGQ=" * 8)]),  # base64 text as the file
        form([field("fileName", b"cat.jpg"), FILE])[:-40],  # ends inside the file
    ],
)
def test_one_chunk_or_many_read_the_same(body: bytes, tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "many").mkdir()
    whole = asyncio.run(_read(body, len(body) + 1, tmp_path / "one"))
    pieces = asyncio.run(_read(body, 7, tmp_path / "many"))
    if isinstance(whole, str) or isinstance(pieces, str):
        assert whole == pieces
        return
    assert whole.fields == pieces.fields
    if whole.file is None or pieces.file is None:
        assert whole.file is pieces.file is None
    else:
        assert whole.file.path.read_bytes() == pieces.file.path.read_bytes()
        assert (whole.file.size, whole.file.head) == (pieces.file.size, pieces.file.head)


# -- the boundary: the usual Content-Type read quickly, any other by python-multipart ----------


def _boundary_by_python_multipart(content_type: str) -> bytes | None:
    media, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    return boundary if media == b"multipart/form-data" and boundary else None


def _boundary(content_type: str) -> bytes | None:
    try:
        return boundary_of(content_type)
    except messages.UploadError:
        return None


CONTENT_TYPE = st.tuples(
    st.sampled_from(["multipart/form-data", "Multipart/Form-Data", "multipart/mixed", ""]),
    st.sampled_from(
        ["; boundary=", ";boundary=", "; Boundary=", "; boundary*=", "; charset=x; boundary="]
    ),
    st.text(alphabet="aZ09'()+_,-./:=? \"\\;*\t", max_size=20),
    st.sampled_from(["", "; charset=utf-8", " ", '"']),
).map("".join)


@settings(max_examples=1000, deadline=None)
@given(CONTENT_TYPE)
def test_the_boundary_is_read_as_python_multipart_reads_it(content_type: str) -> None:
    assert _boundary(content_type) == _boundary_by_python_multipart(content_type)


def test_the_usual_content_types_name_their_boundary() -> None:
    assert boundary_of("multipart/form-data; boundary=----WebKitFormBoundary7MA4") == (
        b"----WebKitFormBoundary7MA4"
    )
    assert boundary_of('multipart/form-data; boundary="a b"') == b"a b"
