"""Rendering problems: RFC 9457 ``application/problem+json`` from one installer.

Every error response of the credential service goes through ``problem_response``: our own
``Problem`` exceptions, request validation (422, with pydantic's reasons but never the submitted
``input``), routing's 404/405 and, as a last resort, anything unexpected (a logged, generic 500).
"""

import re
from collections.abc import Callable, Sequence
from typing import Any, Final

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.core import errors
from app.core.logs import get_logger, request_id_var

PROBLEM_JSON: Final = "application/problem+json"
_SAFE_LOC: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
log = get_logger("errors")


#: The header every answer of the credential service carries except its static assets: a
#: credential or a refusal is for one request, and no cache may keep it.
NO_STORE: Final = ("Cache-Control", "no-store")


def no_store(response: Response) -> None:
    """A router dependency: this router's answers are not to be cached."""
    response.headers[NO_STORE[0]] = NO_STORE[1]


def problem_body(problem: errors.Problem) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": problem.type_uri(),
        "title": problem.title,
        "status": problem.status,
    }
    if problem.detail:
        body["detail"] = problem.detail
    request_id = request_id_var.get()
    if request_id is not None:
        body["request_id"] = request_id
    body.update(problem.members)
    return body


def problem_response(problem: errors.Problem) -> JSONResponse:
    headers = {NO_STORE[0]: NO_STORE[1], **problem.headers}
    return JSONResponse(
        problem_body(problem),
        status_code=problem.status,
        headers=headers,
        media_type=PROBLEM_JSON,
    )


def _safe_loc(loc: tuple[Any, ...], error_type: str) -> list[str | int]:
    """A validation error's location, with anything that is not a plain field name hidden."""
    safe: list[str | int] = []
    for part in loc:
        safe.append(part if isinstance(part, int) or _SAFE_LOC.match(str(part)) else "…")
    if error_type == "extra_forbidden" and safe:
        safe[-1] = "(unknown field)"
    return safe


def is_json(content_type: str) -> bool:
    """Whether a Content-Type names JSON (``application/json`` or ``application/*+json``)."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


#: Called with every problem an app answers with (the credential service audits refusals).
ProblemHook = Callable[[Request, errors.Problem], None]


def _respond(request: Request, problem: errors.Problem) -> JSONResponse:
    hook: ProblemHook | None = getattr(request.app.state, "problem_hook", None)
    if hook is not None:
        hook(request, problem)
    return problem_response(problem)


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.Problem)  # noqa: S101 - registered for Problem only
    return _respond(request, exc)


def validation_problem(raw: Sequence[Any], content_type: str | None) -> errors.Problem:
    """The problem for request validation errors (pydantic's, locations prefixed with
    ``body``/``query``): malformed JSON, a body that is not JSON, or the fields that failed,
    never with the submitted values."""
    if any(e.get("type") == "json_invalid" for e in raw):
        return errors.MalformedJson()
    body_errors = [e for e in raw if tuple(e.get("loc", ()))[:1] == ("body",)]
    if body_errors and content_type and not is_json(content_type):
        return errors.UnsupportedMediaType()
    return errors.InvalidRequest(
        {
            "loc": _safe_loc(tuple(e.get("loc", ())), e.get("type", "")),
            "msg": e.get("msg", ""),
            "type": e.get("type", ""),
        }
        for e in raw
    )


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101 - registered for it only
    return _respond(request, validation_problem(exc.errors(), request.headers.get("content-type")))


_HTTP_PROBLEMS: Final[dict[int, type[errors.Problem]]] = {
    400: errors.BadRequest,
    404: errors.NotFound,
    405: errors.MethodNotAllowed,
    413: errors.BodyTooLarge,
}


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    """Framework HTTP errors. FastAPI wraps errors raised while reading the body (such as our
    body limit, or a JSON body that is not UTF-8) in a 400; the original problem is rendered
    instead."""
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101 - registered for it only
    if isinstance(exc.__cause__, errors.Problem):
        return _respond(request, exc.__cause__)
    if isinstance(exc.__cause__, UnicodeDecodeError):  # undecodable bytes are not JSON either
        return _respond(request, errors.MalformedJson())
    problem = _HTTP_PROBLEMS.get(exc.status_code, errors.Problem)
    return _respond(request, problem(headers=exc.headers))


def unexpected(exc: Exception) -> JSONResponse:
    """A bug: logged with its traceback, answered with a 500 problem that says nothing of it."""
    log.error("unhandled error", exc_info=(type(exc), exc, exc.__traceback__))
    return problem_response(errors.Problem())


async def _on_unexpected(_: Request, exc: Exception) -> JSONResponse:
    return unexpected(exc)


def install(app: FastAPI, *, hook: ProblemHook | None = None) -> None:
    """Register the problem handlers on an app; ``hook`` sees every problem answered."""
    app.state.problem_hook = hook
    app.add_exception_handler(errors.Problem, _on_problem)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(Exception, _on_unexpected)
