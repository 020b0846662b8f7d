# syntax=docker/dockerfile:1
# upload-auth's images, by target:
#   (default)            every role (serve, upload-api, dev), chosen by command;
#   credential-service   the credential service alone (serve): without the upload API's media
#                        libraries (the upload-api extra) or the bulk uploader's (bulk), a third
#                        of the size.
# Same Python minor version as the project (3.11) in every stage.
# Base images by build argument (scripts/containers builds both from Debian's and PyPI's
# packages where no image registry is reachable).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.8

FROM ${UV_IMAGE} AS uv

FROM ${PYTHON_IMAGE} AS build
COPY --from=uv /uv /bin/uv
# UV_SYSTEM_CERTS: the system's certificate store, which also holds a corporate or proxy CA
# where the base image carries it.
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_SYSTEM_CERTS=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_NO_DEV=1 \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src
# shared-mime-info's database, of which the images keep the two files upload-auth reads
# (globs2 and aliases: which declared types to believe for each extension,
# app/core/imagekit/platforms.py), not the package and the libraries it pulls in.
# binutils: strip, for the debugging symbols some wheels ship (uvloop's 14 MB are 2 without).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends shared-mime-info binutils \
 && rm -rf /var/lib/apt/lists/*
# Dependencies first (cached while only the code changes), then the project itself.
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=uv.lock,target=/src/uv.lock \
    --mount=type=bind,source=pyproject.toml,target=/src/pyproject.toml \
    uv sync --locked --no-install-project
COPY pyproject.toml uv.lock README.md ./
COPY app ./app
# --refresh-package: uv keys a local project's cached build on pyproject.toml alone; the
# project is built afresh from the code copied above, every time.
# The core's extension modules lose their debugging symbols (the media libraries' bundled
# libraries are left as they are: patched by auditwheel, they are not stripped safely).
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-editable --refresh-package upload-auth --reinstall-package upload-auth \
 && find /app/.venv -name '*.so' -type f -exec strip --strip-unneeded {} +

FROM build AS build-upload-api
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-editable --all-extras

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="upload-auth" \
      org.opencontainers.image.description="Short-lived upload credentials for ImageKit-compatible upload APIs"
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin app \
 && mkdir -p /data/uploads && chown -R 10001:10001 /data
COPY --from=build /usr/share/mime/globs2 /usr/share/mime/aliases /usr/share/mime/
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    UPLOAD_AUTH_STORAGE_DIR=/data/uploads
USER 10001:10001
EXPOSE 8000
# One uvicorn process per container (scale with replicas); SIGTERM drains in-flight requests.
STOPSIGNAL SIGTERM
ENTRYPOINT ["upload-auth"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]

FROM runtime AS credential-service
# No --chown: the code and its virtualenv stay root-owned, read-only to the app user.
COPY --from=build /app/.venv /app/.venv

FROM runtime
# ExifTool, which reads the upload API's embeddedMetadata (ImageKit's follows it), run by the
# media workers; util-linux's setpriv (in the base) ties it to its worker's life.
USER 0:0
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libimage-exiftool-perl \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/*
USER 10001:10001
COPY --from=build-upload-api /app/.venv /app/.venv
# The upload API's files (the only writable path; mount a volume here).
VOLUME ["/data"]
