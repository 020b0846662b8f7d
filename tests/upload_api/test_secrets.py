"""The upload API never shows a private key, nor logs a token, whatever it is sent."""

import httpx
import pytest

from app.core.keys import KeyPair
from tests.support.apps import FakeClock
from tests.support.uploads import V1, V2, basic, file_part, v1_fields, v2_fields

pytestmark = pytest.mark.anyio


async def test_keys_and_tokens_stay_out_of_answers_and_logs(
    uploads: httpx.AsyncClient,
    pair: KeyPair,
    clock: FakeClock,
    private_key: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Good and bad uploads, some carrying the key: the key is never answered or logged,
    and tokens never reach the logs (only ImageKit's own 'used before' message repeats one)."""
    v1 = v1_fields(pair, clock, fileName="a.png")
    v2 = v2_fields(pair, clock, b"x" * 73)
    responses = [
        await uploads.post(V1, data=v1, files=file_part()),
        await uploads.post(V1, data=v1, files=file_part()),
        await uploads.post(
            V1, data={"fileName": "a.png"}, files=file_part(), headers=basic(private_key)
        ),
        await uploads.post(V1, data={"fileName": private_key}, files=file_part()),
        await uploads.post(
            V1,
            data={
                "fileName": "a.png",
                "publicKey": private_key,
                "signature": private_key,
                "token": private_key,
                "expire": "1",
            },
            files=file_part(),
        ),
        await uploads.post(
            V1, data={"fileName": "a.png"}, files=file_part(), headers=basic(private_key + "x")
        ),
        await uploads.post(V2, data=v2, files=file_part()),
        await uploads.post(V2, data={**v2, "token": private_key}, files=file_part()),
        await uploads.post(V1, content=private_key.encode(), headers={"content-type": private_key}),
    ]
    assert all(r.status_code < 500 for r in responses)
    for response in responses:
        assert private_key not in response.text
        assert all(private_key not in value for value in response.headers.values())
    logs = capsys.readouterr().out
    assert "upload refused" in logs
    assert private_key not in logs
    assert v1["token"] not in logs
    assert v1["signature"] not in logs
    assert v2["token"] not in logs
