"""The browser side: the helper module (public, always) and the demo page (development mode)."""

from functools import cache
from importlib.resources import files

from fastapi import APIRouter, Response
from fastapi.responses import RedirectResponse

from app.core.http.problems import NO_STORE

_SCRIPT_HEADERS = {"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"}


@cache
def asset(name: str) -> bytes:
    """A file of ``app/web``, read once."""
    return (files("app.credential_service") / "web" / name).read_bytes()


def _script() -> Response:
    return Response(asset("upload-auth.js"), media_type="text/javascript", headers=_SCRIPT_HEADERS)


def helper_router() -> APIRouter:
    """``/upload-auth.js``: the dependency-free upload helper, as an ES module."""
    router = APIRouter(include_in_schema=False)

    @router.get("/upload-auth.js")
    async def helper() -> Response:
        return _script()

    return router


def demo_router() -> APIRouter:
    """``/demo/``: pick or drop a file, see it uploaded (``upload-auth dev`` only)."""
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    async def home() -> RedirectResponse:
        return RedirectResponse("/demo/")

    @router.get("/demo")
    async def demo_redirect() -> RedirectResponse:
        return RedirectResponse("/demo/")

    @router.get("/demo/")
    async def demo() -> Response:
        return Response(asset("demo.html"), media_type="text/html", headers=dict([NO_STORE]))

    @router.get("/demo/upload-auth.js")
    async def demo_helper() -> Response:
        return _script()

    return router
