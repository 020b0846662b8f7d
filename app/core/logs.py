"""Logging: stdlib ``logging`` to stdout, one JSON object per line, with redaction built in.

Every record carries the request id of the request it belongs to (a ContextVar set by the
request middleware). Extra fields whose names look like credentials are replaced by
``[redacted]`` whatever their value, as a second line of defence; the first is never passing a
secret to a logger at all.
"""

import asyncio
import atexit
import json
import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from typing import Any, Final

from app.core.fastjson import dumps

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

_REDACT: Final = ("authorization", "cookie", "token", "signature", "private", "secret", "password")
# Standard record attributes, and uvicorn's ANSI-coloured duplicate of its message.
_RESERVED: Final = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "color_message",
}


_SENSITIVE: dict[str, bool] = {}
#: Field-name tuples of ``event`` lines with no sensitive name among them.
_PLAIN_FIELDS: dict[tuple[str, ...], bool] = {}


def _is_sensitive(key: str) -> bool:
    sensitive = _SENSITIVE.get(key)
    if sensitive is None:  # decided once per field name
        sensitive = _SENSITIVE[key] = any(word in key.lower() for word in _REDACT)
    return sensitive


def _redacted(key: str, value: Any) -> Any:
    return "[redacted]" if _is_sensitive(key) else value


def _extras(record: logging.LogRecord) -> list[tuple[str, Any]]:
    """The fields passed with ``extra=``, in the order given, redacted by name."""
    names = record.__dict__.keys() - _RESERVED
    return [
        (k, _redacted(k, v))
        for k, v in record.__dict__.items()
        if k in names and not k.startswith("_")
    ]


def _json_line(
    logger: str,
    level: str,
    created: float,
    msg: str,
    extras: Mapping[str, Any] | Iterable[tuple[str, Any]],
) -> str:
    # To the millisecond, printed with at most three decimals: round(x, 3) does it through a
    # decimal string at ten times the cost (and may differ in the last digit at an exact half)
    doc: dict[str, Any] = {
        "ts": round(created * 1000) / 1000,
        "level": level,
        "logger": logger,
        "msg": msg,
    }
    request_id = request_id_var.get()
    if request_id is not None:
        doc["request_id"] = request_id
    doc.update(extras)
    return dumps(doc, default=str).decode()


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, request id and extras."""

    def format(self, record: logging.LogRecord) -> str:
        line = _json_line(
            record.name,
            record.levelname.lower(),
            record.created,
            record.getMessage(),
            _extras(record),
        )
        if record.exc_info:
            line = line[:-1] + ',"exc":' + json.dumps(self.formatException(record.exc_info)) + "}"
        return line


class TextFormatter(logging.Formatter):
    """Readable lines for a developer's terminal, with the same extras."""

    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{k}={v}" for k, v in _extras(record))
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
    """Writes to whatever ``sys.stdout`` is at the time of each record, after the request
    lines still waiting to be written (so the output keeps its order)."""

    def emit(self, record: logging.LogRecord) -> None:
        flush_lines()
        super().emit(record)

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
        return _scrubbed(self.inner.format(record))


#: Every private key this process has held: scrubbed from every line, even after a rotation.
_SECRETS: set[str] = set()


def scrub(secrets: Iterable[str]) -> None:
    """Add values the log formatter must never let through."""
    _SECRETS.update(s for s in secrets if s)


_json_output = False  # set by configure_logging


def _scrubbed(line: str) -> str:
    for secret in _SECRETS:
        if secret in line:
            line = line.replace(secret, "[redacted]")
    return line


def event(logger: logging.Logger, msg: str, fields: dict[str, Any]) -> None:
    """An INFO line with ``fields``, as ``logger.info(msg, extra=fields)`` writes it, but for
    the lines every request writes (access, audit) without building a LogRecord and going
    through the handler chain, which costs more than the rest of a credential request."""
    if not logger.isEnabledFor(logging.INFO):
        return
    if not _json_output:
        logger.info(msg, extra=fields)
        return
    names = tuple(fields)
    plain = _PLAIN_FIELDS.get(names)
    if plain is None:  # decided once per set of field names (a handful: access, audit)
        plain = not any(_is_sensitive(k) for k in names)
        if len(_PLAIN_FIELDS) < 1024:
            _PLAIN_FIELDS[names] = plain
    extras = fields if plain else [(k, _redacted(k, v)) for k, v in fields.items()]
    _pending.append(_scrubbed(_json_line(logger.name, "info", time.time(), msg, extras)))
    _schedule_flush()


# -- the request lines, written together -------------------------------------------------------
#
# A request writes two lines (access and audit). Written and flushed one by one that is two
# system calls per request, while under load the event loop serves dozens of requests in one
# turn. So the lines wait in ``_pending`` until the end of the loop's current turn
# (``call_soon``) and go out in one write: no line waits longer than the requests already being
# handled, and a line written outside a running loop goes out at once.

_pending: deque[str] = deque()  # append and popleft are atomic: threads may log too
_MAX_PENDING: Final = 256
#: The thread and loop a flush is scheduled on. Found by thread id and ``is_running`` rather than
#: ``asyncio.get_running_loop()``, which on Python 3.11 makes a getpid() system call each time.
_flush_owner: tuple[int, asyncio.AbstractEventLoop] | None = None


def _schedule_flush() -> None:
    global _flush_owner
    if len(_pending) >= _MAX_PENDING:
        flush_lines()
        return
    owner, thread = _flush_owner, threading.get_ident()
    if owner is not None and owner[0] == thread and owner[1].is_running():
        return  # this thread's running loop flushes at the end of its turn
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        flush_lines()
        return
    _flush_owner = owner = (thread, loop)
    loop.call_soon(_flush_turn, owner)


def _flush_turn(owner: tuple[int, asyncio.AbstractEventLoop]) -> None:
    global _flush_owner
    if _flush_owner is owner:
        _flush_owner = None
    flush_lines()


def flush_lines() -> None:
    """Write the request lines still waiting; at shutdown, and before any other record."""
    lines = []
    while _pending:
        try:
            lines.append(_pending.popleft())
        except IndexError:  # another thread took the last one
            break
    if not lines:
        return
    text = "\n".join(lines) + "\n"
    stream = sys.stdout
    stream.write(text)
    stream.flush()


atexit.register(flush_lines)


def configure_logging(fmt: str, level: str, secrets: Iterable[str] = ()) -> None:
    """Route our loggers and uvicorn's through one stdout handler, scrubbing ``secrets``."""
    scrub(secrets)
    # Records need no source location, thread or process names (the logging HOWTO's
    # "Optimization" section), which cost more than the rest of a line.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    global _json_output
    _json_output = fmt == "json"
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
