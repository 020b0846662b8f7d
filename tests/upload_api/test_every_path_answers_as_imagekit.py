"""Every refusal the upload API gives, on any path, is ImageKit's error body: the official SDKs
parse ``{message, help}`` wherever they meet it."""

import httpx
import pytest

from tests.support.uploads import V1, assert_imagekit_error

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("method", "path", "status", "message"),
    [
        ("GET", "/files/nothing/here.png", 404, "The requested file does not exist."),
        ("GET", "/files/tr:n-ik_ml_thumbnail/none.png", 404, "The requested file does not exist."),
        ("GET", "/api/v3/files/upload", 404, "The requested resource does not exist."),
        ("GET", "/no/such/route", 404, "The requested resource does not exist."),
        ("GET", V1, 405, "This method is not allowed on this resource."),
        ("DELETE", "/files/a.png", 405, "This method is not allowed on this resource."),
    ],
)
async def test_refusals_outside_uploads_are_imagekits_shape(
    uploads: httpx.AsyncClient, method: str, path: str, status: int, message: str
) -> None:
    """A missing file, an unknown route and a wrong method: ImageKit's status and body."""
    response = await uploads.request(method, path)
    assert_imagekit_error(response, status, message)
    assert response.headers["content-type"] == "application/json"
