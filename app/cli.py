"""The ``upload-auth`` command.

- ``serve``: the credential service (production);
- ``upload-api``: the ImageKit-compatible upload API;
- ``dev``: development mode, both behind one address, throwaway keys, no caller authentication.

Configuration errors end the process with exit status 2 and one line on stderr naming the
setting; nothing is started half-configured.
"""

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

# The servers' imports (FastAPI, pydantic-settings, uvicorn) are made by the commands that run
# a server: `upload-auth upload` starts in a fraction of the time without them.
if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from app.core.settings import Settings
    from app.core.webhooks.outbox import Outbox

#: The uvicorn settings the service is measured and shipped with: uvloop + httptools (with a
#: bounded request head: ``app.http_protocol``), one process (scale with replicas, not workers), our
#: own access line instead of uvicorn's.
UVICORN_OPTIONS: dict[str, Any] = {
    "loop": "uvloop",
    "access_log": False,
    "server_header": False,
    "log_config": None,
    "timeout_graceful_shutdown": 20,
}

DEV_HELP = """upload-auth (development mode) on {base}
  demo page:      {base}/demo/   <- start here
  v1 credential:  curl {base}/v1/auth
  v2 credential:  curl -X POST {base}/v2/token -H 'Content-Type: application/json' \\
                    -d '{{"fileName": "cat.png", "fileSize": 48213, "mimeType": "image/png"}}'
  upload API:     {base}/api/v1/files/upload and {base}/api/v2/files/upload
  stored files:   {storage} (served under {base}/files/)
  API docs:       {base}/docs"""

#: What ``upload-auth --help`` says (the module's docstring is for the code's readers).
DESCRIPTION = """Short-lived upload credentials for ImageKit-compatible upload APIs.

commands:
  serve        the credential service (production: callers must be configured)
  upload-api   the ImageKit-compatible upload API
  dev          development mode: both on one port, throwaway keys, no caller authentication
  upload       upload files and folders, N at a time, to ImageKit or our upload API
  webhooks     the upload events' queue: status, dead letters, replay, purge
  new-api-key  make an API key for a back end, and the hash for the config

Run 'upload-auth COMMAND --help' for a command's options."""

#: Under every server command's options: where its configuration comes from.
CONFIGURATION = """configuration:
  Settings come from environment variables (UPLOAD_AUTH_<NAME>; the key pair from
  IMAGEKIT_PUBLIC_KEY and IMAGEKIT_PRIVATE_KEY, or IMAGEKIT_PUBLIC_KEY_FILE and
  IMAGEKIT_PRIVATE_KEY_FILE), then the TOML file named by UPLOAD_AUTH_CONFIG_FILE, then the
  defaults. Every setting, its default and its bounds: docs/configuration.md.
  A bad value stops the command with one line naming the setting (exit status 2)."""

_COMMANDS = (
    ("serve", "run the credential service", 8000),
    ("upload-api", "run the ImageKit-compatible upload API", 8001),
    ("dev", "development mode: service + upload API, throwaway keys, no caller auth", 8000),
)


def _port(text: str) -> int:
    """A TCP port, 1 to 65535 (argparse says which value is wrong, and exits 2)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port: ports are 1 to 65535")
    return port


#: Addresses that mean "every interface": a listener's, never a URL a client can use.
_ANY_HOST = ("0.0.0.0", "::", "")  # noqa: S104 - compared against, nothing bound


def _reachable(host: str) -> str:
    """The host a client on this machine reaches a listener on ``host`` by (in URLs)."""
    if host in _ANY_HOST:
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown after each option; the epilog kept as written."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="upload-auth",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from app import package_version

    parser.add_argument("--version", action="version", version=f"upload-auth {package_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text, port in _COMMANDS:
        command = commands.add_parser(
            name,
            help=help_text,
            description=help_text[0].upper() + help_text[1:] + ".",
            epilog=CONFIGURATION,
            formatter_class=_Formatter,
        )
        command.add_argument("--host", default="127.0.0.1", help="address to listen on")
        command.add_argument("--port", type=_port, default=port, help="port to listen on")
    upload = commands.add_parser("upload", help="upload files and folders, N at a time")
    from app.bulk import command as bulk_command

    bulk_command.add_arguments(upload)
    hooks = commands.add_parser(
        "webhooks",
        help="the upload events' queue: status, dead letters, replay, purge",
        description="The upload API's webhook outbox, as the settings name it (Redis, or "
        "SQLite under the storage directory). Output: JSON lines.",
        epilog=CONFIGURATION,
        formatter_class=_Formatter,
    )
    hooks.add_argument("action", choices=["status", "dead", "replay", "purge"])
    hooks.add_argument("ids", nargs="*", help="dead letters to replay or purge")
    hooks.add_argument("--all", action="store_true", help="replay or purge every dead letter")
    hooks.add_argument("--bodies", action="store_true", help="dead: show each event's body")
    key = commands.add_parser("new-api-key", help="make an API key for a back end, and its hash")
    key.add_argument("--name", required=True, help="the caller id the key stands for")
    key.add_argument("--profiles", help="comma-separated profiles it may use (default: any)")
    return parser


def new_api_key(name: str, profiles: str | None) -> str:
    """A new key (for the caller, once) and the config entry (only its hash) for the service."""
    from app.credential_service.callers import api_keys

    key = api_keys.new_api_key()
    lines = ["[[callers.api_keys]]", f'name = "{name}"', f'hash = "{api_keys.hash_api_key(key)}"']
    if profiles:
        listed = ", ".join(f'"{p.strip()}"' for p in profiles.split(",") if p.strip())
        lines.append(f"profiles = [{listed}]")
    config = "\n".join(lines)
    return (
        f"API key for {name} (give it to the caller; it is not stored anywhere):\n\n"
        f"    {key}\n\nAdd to the config file:\n\n{config}\n"
    )


def webhooks(args: argparse.Namespace) -> int:
    """``upload-auth webhooks ACTION``: exit status 2 for a config error or a missing choice."""
    import asyncio
    import json
    import time

    from app.core import parts
    from app.core.settings import ConfigError, load_settings
    from app.core.webhooks import admin

    if args.action in ("replay", "purge") and not (args.ids or args.all):
        print(f"upload-auth: webhooks {args.action}: name dead letters, or --all", file=sys.stderr)
        return 2
    try:
        settings = load_settings()
        outboxes = [("outbox", parts.webhook_outbox(settings))]
        spool = parts.webhook_spool(settings)
        if spool is not None:  # this replica's spool, for events Redis did not take
            outboxes.append(("spool", spool))
    except ConfigError as exc:
        print(f"upload-auth: config error: {exc}", file=sys.stderr)
        return 2

    async def one(outbox: "Outbox") -> list[str]:
        if args.action == "status":
            return await admin.status(outbox)
        if args.action == "dead":
            return await admin.dead_letters(outbox, bodies=args.bodies)
        chosen = None if args.all else args.ids
        if args.action == "replay":
            return await admin.replay(outbox, chosen, int(time.time() * 1000))
        return await admin.purge(outbox, chosen)

    async def run() -> list[str]:
        lines = []
        for name, outbox in outboxes:
            try:
                found = await one(outbox)
            finally:
                await outbox.close()
            if len(outboxes) > 1:  # say which, when there are two
                found = [json.dumps({"in": name, **json.loads(line)}) for line in found]
            lines += found
        return lines

    for line in asyncio.run(run()):
        print(line)
    return 0


def _unless_set(**defaults: Any) -> dict[str, Any]:
    """Defaults that apply only where the environment says nothing."""
    from app.core.settings import ENV_PREFIX

    return {k: v for k, v in defaults.items() if ENV_PREFIX + k.upper() not in os.environ}


#: What the upload API imports that the credential service does not (the ``upload-api`` extra).
UPLOAD_API_MODULES: Final = ("python_multipart", "pebble", "PIL", "pillow_heif", "av", "defusedxml")
#: What the bulk uploader imports that the rest does not (the ``bulk`` extra).
BULK_MODULES: Final = ("rich",)


class MissingExtra(Exception):
    """A command's extra dependencies are not installed (the credential-service image)."""


def _require(what: str, extra: str, modules: tuple[str, ...]) -> None:
    """MissingExtra, naming what is missing and how to get it, unless ``modules`` import."""
    import importlib.util

    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingExtra(
            f"{what} needs its own dependencies ({', '.join(missing)} missing): "
            f"pip install 'upload-auth[{extra}]', or run the full image"
        )


def _upload_api_installed() -> None:
    _require("the upload API", "upload-api", UPLOAD_API_MODULES)


def build(command: str, host: str, port: int) -> "tuple[ASGIApp, Settings]":
    """The app and settings for a command; raises ConfigError."""
    from app.core.settings import load_settings

    if command == "serve":  # each role imports only what it runs: start-up time and memory
        from app.credential_service.app import create_app

        settings = load_settings()
        return create_app(settings), settings
    if command == "upload-api":
        _upload_api_installed()
        from app.upload_api.app import create_upload_app

        settings = load_settings()
        return create_upload_app(settings), settings
    _upload_api_installed()
    from app.dev import serve_both

    settings = load_settings(
        dev_mode=True,
        **_unless_set(log_format="text", upload_api_url=f"http://{_reachable(host)}:{port}"),
    )
    return serve_both(settings), settings


def _port_in_use(host: str, port: int) -> str | None:
    """A sentence for a port the server cannot listen on, checked before anything is printed
    (else the "ready" banner would be followed by uvicorn's traceback)."""
    import errno
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"cannot listen on --host {host}: {exc.strerror}"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is in use: stop what uses it, or pass --port N"
            return f"cannot listen on {host}:{port} ({exc.strerror}): pass another --host or --port"
    return None


def _reachable_parts(settings: "Settings") -> bool:
    """Say what the service cannot reach (``credential_service.startup``): False to stop, on
    a configuration mistake."""
    import asyncio

    from app.credential_service import startup

    found = asyncio.run(startup.check(settings))
    for line in found.warnings:
        print(f"upload-auth: warning: {line}", file=sys.stderr)
    for line in found.errors:
        print(f"upload-auth: config error: {line}", file=sys.stderr)
    return not found.errors


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "new-api-key":
        print(new_api_key(args.name, args.profiles))
        return 0
    if args.command == "upload":
        try:
            _require("the bulk uploader", "bulk", BULK_MODULES)
        except MissingExtra as exc:
            print(f"upload-auth: {exc}", file=sys.stderr)
            return 2
        from app.bulk import command as bulk_command

        return bulk_command.main(args)
    if args.command == "webhooks":
        return webhooks(args)
    import uvicorn

    from app.core.settings import ConfigError

    try:
        app, settings = build(args.command, args.host, args.port)
    except ConfigError as exc:
        print(f"upload-auth: config error: {exc}", file=sys.stderr)
        return 2
    except MissingExtra as exc:
        print(f"upload-auth: {exc}", file=sys.stderr)
        return 2
    busy = _port_in_use(args.host, args.port)
    if busy is not None:
        print(f"upload-auth: {busy}", file=sys.stderr)
        return 2
    if args.command == "serve" and not _reachable_parts(settings):
        return 2
    if args.command == "dev":
        base = f"http://{_reachable(args.host)}:{args.port}"
        print(
            DEV_HELP.format(base=base, storage=settings.storage_dir.resolve()),
            file=sys.stderr,
            flush=True,
        )
    from app.http_protocol import bounded_protocol

    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        http=bounded_protocol(
            settings.max_header_bytes,
            settings.max_headers,
            head_timeout=settings.head_timeout,
            body_timeout=settings.body_timeout,
            max_connections=settings.max_connections,
        ),
        # Forwarded headers are believed only from the configured proxies.
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=",".join(settings.trusted_proxies) or "127.0.0.1",
        **UVICORN_OPTIONS,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
