"""The floor: a bare FastAPI endpoint returning a constant small JSON, nothing else."""

from fastapi import FastAPI

BODY = {
    "token": "00000000-0000-4000-8000-000000000000",
    "expire": 1795241447,
    "signature": "0" * 40,
    "publicKey": "public_bench",
}


def create() -> FastAPI:
    app = FastAPI()

    @app.get("/v1/auth")
    async def auth() -> dict[str, object]:
        return BODY

    return app
