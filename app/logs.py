"""Logging: stdlib ``logging`` to stdout, one JSON object per line, with redaction built in.

Every record carries the request id of the request it belongs to (a ContextVar set by the
request middleware). Extra fields whose names look like credentials are replaced by
``[redacted]`` whatever their value, as a second line of defence; the first is never passing a
secret to a logger at all.
"""

import json
import logging
import sys
from collections.abc import Iterable
from contextvars import ContextVar
from typing import Any, Final

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

_REDACT: Final = ("authorization", "cookie", "token", "signature", "private", "secret", "password")
# Standard record attributes, and uvicorn's ANSI-coloured duplicate of its message.
_RESERVED: Final = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "color_message",
}


def _redacted(key: str, value: Any) -> Any:
    return "[redacted]" if any(word in key.lower() for word in _REDACT) else value


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, request id and extras."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id is not None:
            doc["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                doc[key] = _redacted(key, value)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    """Readable lines for a developer's terminal, with the same extras."""

    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(
            f"{k}={_redacted(k, v)}"
            for k, v in record.__dict__.items()
            if k not in _RESERVED and not k.startswith("_")
        )
        line = f"{record.levelname:<7} {record.name}: {record.getMessage()}"
        request_id = request_id_var.get()
        if request_id is not None:
            extras = f"request_id={request_id} {extras}".rstrip()
        if extras:
            line += f"  [{extras}]"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stdout`` is at the time of each record."""

    @property
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, _: Any) -> None:
        pass


class Scrubbed(logging.Formatter):
    """Wraps a formatter; any configured secret in the finished line becomes ``[redacted]``.

    The last line of defence: a client that mistakenly sends the private key (as a file name,
    say) must not get it written to the logs.
    """

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        line = self.inner.format(record)
        for secret in _SECRETS:
            if secret in line:
                line = line.replace(secret, "[redacted]")
        return line


#: Every private key this process has held: scrubbed from every line, even after a rotation.
_SECRETS: set[str] = set()


def scrub(secrets: Iterable[str]) -> None:
    """Add values the log formatter must never let through."""
    _SECRETS.update(s for s in secrets if s)


def configure_logging(fmt: str, level: str, secrets: Iterable[str] = ()) -> None:
    """Route our loggers and uvicorn's through one stdout handler, scrubbing ``secrets``."""
    scrub(secrets)
    handler = StdoutHandler()
    inner = JsonFormatter() if fmt == "json" else TextFormatter()
    handler.setFormatter(Scrubbed(inner))
    for name in ("upload_auth", "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False
    # uvicorn's own access log stays off: the request middleware writes the one access line.
    logging.getLogger("uvicorn.access").disabled = True


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(f"upload_auth.{name}")
