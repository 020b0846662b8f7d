# syntax=docker/dockerfile:1
# The compose example's web app: Python and the official ImageKit SDK (to verify webhooks).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.8
FROM ${UV_IMAGE} AS uv

FROM ${PYTHON_IMAGE}
# The system's CA store (a registry mirror behind a corporate CA works too); a Debian system
# Python is "externally managed": this image is its only user.
ENV UV_SYSTEM_CERTS=1
RUN --mount=from=uv,source=/uv,target=/usr/local/bin/uv \
    uv pip install --system --break-system-packages --no-cache "imagekitio[webhooks]==5.11.0"
COPY example_app.py /srv/example_app.py
USER 10001:10001
CMD ["python3", "/srv/example_app.py"]
