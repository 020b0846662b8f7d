"""Inputs that used to escape as a 500: each gets ImageKit's 400 now, and leaves nothing
behind."""

from pathlib import Path

import httpx
import pytest

from app.core.keys import KeyPair
from tests.support.apps import FakeClock
from tests.support.uploads import V1, V2, basic, file_part, leftovers, v1_fields, v2_fields

pytestmark = pytest.mark.anyio

#: Characters str.isdigit() accepts that int() refuses, or that are not ASCII digits at all.
ODD_DIGITS = [
    "\u00b2",  # superscript two
    "1795000600\u00b2",
    "\u0661\u0667\u0669\u0665\u0660\u0660\u0660\u0666\u0660\u0660",  # Arabic-Indic
    "\uff11\uff17\uff19\uff15\uff10\uff10\uff10\uff16\uff10\uff10",  # full-width
]
DEEP = "[" * 20_000 + "]" * 20_000


@pytest.mark.parametrize("expire", ODD_DIGITS)
async def test_non_ascii_digits_in_expire_are_an_invalid_expire(
    uploads: httpx.AsyncClient, pair: KeyPair, clock: FakeClock, expire: str
) -> None:
    """Superscripts, Arabic-Indic and full-width digits are not a Unix time."""
    fields = {**v1_fields(pair, clock, fileName="a.png"), "expire": expire}
    response = await uploads.post(V1, data=fields, files=file_part())
    assert response.status_code == 400, response.text
    assert "invalid expire parameter" in response.json()["message"]


@pytest.mark.parametrize("coordinates", ["1,2,3,\u00b2", "\u0661,2,3,4"])
async def test_non_ascii_digits_in_coordinates_are_refused(
    uploads: httpx.AsyncClient, private_key: str, coordinates: str
) -> None:
    """customCoordinates take ASCII digits only."""
    response = await uploads.post(
        V1,
        headers=basic(private_key),
        data={"fileName": "a.png", "customCoordinates": coordinates},
        files=file_part(),
    )
    assert response.status_code == 400
    assert "customCoordinates" in response.json()["message"]


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("customMetadata", "Your request contains invalid customMetadata parameter."),
        ("extensions", "Your request contains invalid extensions parameter."),
        (
            "transformation",
            "The file could not be uploaded because the transformation field is invalid.",
        ),
    ],
)
async def test_deeply_nested_json_fields_are_refused(
    uploads: httpx.AsyncClient, private_key: str, storage_dir: Path, field: str, message: str
) -> None:
    """JSON nested deeper than Python's parser goes is each field's invalid parameter; never a
    500, nothing left in tmp/."""
    response = await uploads.post(
        V1, headers=basic(private_key), data={"fileName": "a.png", field: DEEP}, files=file_part()
    )
    assert response.status_code == 400, response.text
    assert response.json()["message"] == message
    assert leftovers(storage_dir) == []


async def test_deep_json_in_checks_of_a_v2_request_is_a_checks_error(
    uploads: httpx.AsyncClient, private_key: str
) -> None:
    """Deeply parenthesised checks are a syntax error, not a crash."""
    response = await uploads.post(
        V2,
        headers=basic(private_key),
        data={"fileName": "a.png", "checks": "(" * 5000 + '"file.size" > 1' + ")" * 5000},
        files=file_part(),
    )
    assert response.status_code == 400
    assert "checks" in response.json()["message"]


async def test_a_reused_v2_token_is_not_repeated_whole(
    uploads: httpx.AsyncClient, pair: KeyPair, clock: FakeClock
) -> None:
    """The refusal of a reused JWT names its start only: the token does not land in client
    exception text and logs."""
    from tests.support.samples import png

    fields = v2_fields(pair, clock, png())
    assert (await uploads.post(V2, data=fields, files=file_part())).status_code == 200
    again = await uploads.post(V2, data=fields, files=file_part())
    message = again.json()["message"]
    assert "has been used before" in message
    assert fields["token"] not in message
    assert fields["token"][:12] + "..." in message
