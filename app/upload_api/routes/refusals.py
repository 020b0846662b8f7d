"""A refused request's answer: ImageKit's status and ``{message, help}``, never stored by a
cache, closing the connection when the body was left unread, with Retry-After when a retry may
succeed. Logged by its stable reason, never its message (which may repeat the client's token)."""

from fastapi.responses import JSONResponse

from app.core.http.problems import NO_STORE
from app.core.logs import get_logger
from app.upload_api import messages

log = get_logger("upload_api")


def refusal_response(exc: messages.UploadError) -> JSONResponse:
    log.info("upload refused", extra={"status": exc.status, "reason": exc.reason})
    headers = dict([NO_STORE])
    if exc.body_unread:
        headers["Connection"] = "close"
    if exc.retry_after is not None:
        headers["Retry-After"] = str(exc.retry_after)
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)
