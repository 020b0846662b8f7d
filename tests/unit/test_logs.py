"""Request lines (access, audit): complete JSON, in order, with every other record in sequence,
written by the end of the event loop's turn, or at once outside a loop; nothing lost."""

import asyncio
import json
from typing import Any

import pytest

from app.core.http import middleware
from app.core.logs import configure_logging, event, get_logger


def lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


@pytest.fixture(autouse=True)
def json_logs() -> None:
    configure_logging("json", "INFO", ["private_never_shown"])


def test_request_lines_keep_order_with_other_records(capsys: pytest.CaptureFixture[str]) -> None:
    """Within a loop's turn: 300 request lines (past the batch size) and a warning through the
    logging handler come out complete and in the order they were logged."""
    audit, other = get_logger("audit"), get_logger("service")

    async def turn() -> None:
        for n in range(150):
            event(audit, "credential.issued", {"n": n})
        other.warning("halfway")
        for n in range(150, 300):
            event(audit, "credential.issued", {"n": n})
        await asyncio.sleep(0)

    asyncio.run(turn())
    out = lines(capsys.readouterr().out)
    assert [d.get("n", "warning") for d in out] == [*range(150), "warning", *range(150, 300)]
    assert out[150]["msg"] == "halfway"


def test_outside_a_loop_lines_are_written_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    event(get_logger("audit"), "credential.issued", {"caller": "cli"})
    assert lines(capsys.readouterr().out)[0]["caller"] == "cli"


def test_odd_values_and_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    """A lone surrogate (a client can send one as \\ud800 in JSON) and an integer past 64 bits
    still make a line; a configured secret and a sensitive field name never do."""
    event(
        get_logger("audit"),
        "credential.refused",
        {
            "fileName": "a\ud800.png",
            "size": 2**70,
            "detail": "key private_never_shown",
            "signature": "abc",
        },
    )
    doc = lines(capsys.readouterr().out)[0]
    assert doc["fileName"] == "a\ud800.png"
    assert doc["size"] == 2**70
    assert doc["detail"] == "key [redacted]"
    assert doc["signature"] == "[redacted]"


@pytest.mark.parametrize(
    ("now", "text"),
    [(1700000000.1234567, "1700000000.123"), (1700000000.9996, "1700000001.0"), (5.0, "5.0")],
)
def test_time_is_to_the_millisecond(
    now: float, text: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("app.core.logs.time.time", lambda: now)
    event(get_logger("audit"), "credential.issued", {})
    assert f'"ts":{text},' in capsys.readouterr().out


def test_access_line_duration_in_milliseconds(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The access line's duration: milliseconds with at most two decimals."""
    clock = iter([100.0, 100.0123456])
    monkeypatch.setattr("app.core.http.middleware.time.perf_counter", lambda: next(clock))

    async def app(_scope: Any, _receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> Any:
        return {"type": "http.request", "body": b""}

    async def send(_message: Any) -> None:
        pass

    scope = {"type": "http", "method": "GET", "path": "/x", "headers": []}
    asyncio.run(middleware.RequestContext(app)(scope, receive, send))
    (line,) = lines(capsys.readouterr().out)
    assert (line["status"], line["duration_ms"]) == (204, 12.35)
