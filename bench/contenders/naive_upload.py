"""What people write for an upload endpoint in FastAPI: ``UploadFile`` copied to a file."""

import os
import shutil
import tempfile
from typing import Annotated

from fastapi import FastAPI, Form, UploadFile


def create() -> FastAPI:
    app = FastAPI()
    directory = os.environ.get("BENCH_DIR", tempfile.gettempdir())

    @app.post("/upload")
    async def upload(file: UploadFile, fileName: Annotated[str, Form()]) -> dict[str, object]:
        fd, path = tempfile.mkstemp(dir=directory)
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(file.file, out)
            size = out.tell()
        return {"name": fileName, "size": size, "path": path}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
