"""The OpenAPI document: problem responses declared per route, served as problem+json."""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.credential_service.schemas import ProblemDocument

_DESCRIPTIONS = {
    400: "Malformed request body",
    401: "No recognised caller credentials",
    403: "The caller may not do this",
    404: "Nothing is known by that name",
    413: "Request body too large",
    415: "Request body is not JSON",
    422: "The request or the policy refuses it",
    429: "Rate limit or byte quota reached (see Retry-After)",
    502: "The session check gave no usable answer",
    503: "The caller cannot be checked right now (see Retry-After)",
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries for the problem statuses a route can answer with."""
    return {s: {"model": ProblemDocument, "description": _DESCRIPTIONS[s]} for s in statuses}


def install(app: FastAPI) -> None:
    """Serve an OpenAPI document whose error responses say ``application/problem+json``."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                routes=app.routes,
                description=app.description,
            )
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    for status, response in operation.get("responses", {}).items():
                        content = response.get("content", {})
                        is_error = status.isdigit() and int(status) >= 400
                        if is_error and "application/json" in content:
                            content["application/problem+json"] = content.pop("application/json")
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
