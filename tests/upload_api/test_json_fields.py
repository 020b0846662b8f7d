"""The JSON-valued fields against ImageKit's documented shapes, checked before the credential is
burned; requested extensions reported in ``extensionStatus``; a file published with its
metadata or not at all."""

import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from imagekitio.types.file_upload_response import FileUploadResponse

from app.core.keys import KeyPair
from app.upload_api.storage import LocalStorage
from tests.support.apps import FakeClock
from tests.support.uploads import V1, assert_imagekit_error, basic, file_part, leftovers, v1_fields

pytestmark = pytest.mark.anyio

METADATA = "Your request contains invalid customMetadata parameter."
EXTENSIONS = "Your request contains invalid extensions parameter."
TRANSFORMATION = "The file could not be uploaded because the transformation field is invalid."
STORAGE = "The upload API cannot store files right now. Please retry."
ABS_RTMP = json.dumps({"post": [{"type": "abs", "value": "x", "protocol": "rtmp"}]})
ABS_HLS = json.dumps({"post": [{"type": "abs", "value": "sr-240", "protocol": "hls"}]})


def nested(depth: int) -> str:
    return json.dumps({"a": json.loads("[" * depth + "1" + "]" * depth)})


BAD = [
    ("customMetadata", nested(500), METADATA),
    ("customMetadata", nested(2), METADATA),
    ("customMetadata", json.dumps({"a": {"b": 1}}), METADATA),
    ("customMetadata", "[1, 2]", METADATA),
    ("customMetadata", "{", METADATA),
    ("customMetadata", json.dumps({f"k{i}": i for i in range(101)}), METADATA),
    ("extensions", '{"name": "remove-bg"}', EXTENSIONS),
    ("extensions", '[{"name": "make-it-pretty"}]', EXTENSIONS),
    ("extensions", '[{"name": "saved-extension", "id": "ext_1"}]', EXTENSIONS),
    ("extensions", '[{"name": "remove-bg", "options": {"a": {"b": [1]}}}]', EXTENSIONS),
    ("extensions", json.dumps([{"name": "remove-bg"}] * 11), EXTENSIONS),
    ("extensions", "[" * 600 + "]" * 600, EXTENSIONS),
    ("transformation", '{"post": [{"type": "transformation"}]}', TRANSFORMATION),
    ("transformation", '{"pre": 5}', TRANSFORMATION),
    ("transformation", '{"middle": "w-100"}', TRANSFORMATION),
    ("transformation", "{}", TRANSFORMATION),
    (
        "transformation",
        '{"post": [{"type": "abs", "value": "x", "protocol": "rtmp"}]}',
        TRANSFORMATION,
    ),
    ("transformation", '{"post": ' + "[" * 600 + "]" * 600 + "}", TRANSFORMATION),
]


@pytest.mark.parametrize(("field", "value", "message"), BAD)
async def test_a_malformed_field_leaves_the_credential_unburned(
    uploads: httpx.AsyncClient,
    pair: KeyPair,
    clock: FakeClock,
    storage_dir: Path,
    field: str,
    value: str,
    message: str,
) -> None:
    """A field outside ImageKit's shape is refused before the credential is burned: the same
    credential, with the field corrected, then uploads; nothing is stored for the refusal."""
    credential = v1_fields(pair, clock, fileName="a.png")
    refused = await uploads.post(V1, data={**credential, field: value}, files=file_part())
    assert_imagekit_error(refused, 400, message)
    assert not list((storage_dir / "files").rglob("*.png"))
    retried = await uploads.post(V1, data=credential, files=file_part())
    assert retried.status_code == 200, retried.text


GOOD = [
    ("customMetadata", json.dumps({"brand": "acme", "price": 9.5, "sizes": ["s", "m"], "x": None})),
    ("extensions", json.dumps([{"name": "google-auto-tagging", "options": {"maxTags": 5}}])),
    ("transformation", json.dumps({"pre": "w-100", "post": [{"type": "thumbnail"}]})),
    (
        "transformation",
        json.dumps({"post": [{"type": "abs", "value": "sr-240", "protocol": "hls"}]}),
    ),
]


@pytest.mark.parametrize(("field", "value"), GOOD)
async def test_imagekits_shapes_are_accepted(
    uploads: httpx.AsyncClient, private_key: str, field: str, value: str
) -> None:
    """Each field as the SDKs send it is accepted."""
    response = await uploads.post(
        V1,
        headers=basic(private_key),
        data={"fileName": "a.png", field: value, "responseFields": "customMetadata"},
        files=file_part(),
    )
    assert response.status_code == 200, response.text
    if field == "customMetadata":
        assert response.json()["customMetadata"] == json.loads(value)


async def test_requested_extensions_are_reported_not_ignored(
    uploads: httpx.AsyncClient, private_key: str
) -> None:
    """None of ImageKit's extensions runs here: each requested one is `failed` in
    `extensionStatus`, which imagekitio's strict response model accepts; none asked, none
    reported."""
    asked = [{"name": "remove-bg"}, {"name": "aws-auto-tagging", "options": {"minConfidence": 80}}]
    response = await uploads.post(
        V1,
        headers=basic(private_key),
        data={"fileName": "a.png", "extensions": json.dumps(asked)},
        files=file_part(),
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["extensionStatus"] == {"remove-bg": "failed", "aws-auto-tagging": "failed"}
    parsed = FileUploadResponse.model_validate(body, strict=True)
    assert parsed.extension_status is not None
    assert parsed.extension_status.remove_bg == "failed"
    plain = await uploads.post(
        V1, headers=basic(private_key), data={"fileName": "b.png"}, files=file_part()
    )
    assert "extensionStatus" not in plain.json()


async def test_a_file_appears_with_its_metadata_or_not_at_all(
    uploads: httpx.AsyncClient,
    private_key: str,
    storage_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The metadata document cannot be written (a full disk): the answer is ImageKit's 503 and
    neither the file nor its metadata nor anything temporary is left; once it can, the same
    upload is stored whole."""

    real_new_temp = LocalStorage.new_temp
    taken: list[Path] = []

    def full_after_the_file(self: LocalStorage) -> tuple[int, Path]:
        """The file part is written; the metadata document goes to the kernel's /dev/full."""
        fd, path = real_new_temp(self)
        taken.append(path)
        if len(taken) == 1:
            return fd, path
        os.close(fd)
        return os.open("/dev/full", os.O_WRONLY), path

    with monkeypatch.context() as patch:
        patch.setattr(LocalStorage, "new_temp", full_after_the_file)
        refused = await uploads.post(
            V1,
            headers=basic(private_key),
            data={"fileName": "a.png", "useUniqueFileName": "false"},
            files=file_part(),
        )
    assert_imagekit_error(
        refused, 503, "The upload API cannot store files right now. Please retry."
    )
    assert len(taken) == 2
    assert not any(path.exists() for path in taken)
    assert not any(p.is_file() for p in (storage_dir / "files").rglob("*"))
    assert not any((storage_dir / "meta").iterdir())
    assert leftovers(storage_dir) == []
    assert (await uploads.get("/files/a.png")).status_code == 404
    stored = await uploads.post(
        V1,
        headers=basic(private_key),
        data={"fileName": "a.png", "useUniqueFileName": "false"},
        files=file_part(),
    )
    assert stored.status_code == 200, stored.text
    assert (await uploads.get("/files/a.png")).status_code == 200
