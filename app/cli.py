"""The ``upload-auth`` command: ``serve`` (production) and ``dev`` (development mode).

Configuration errors end the process with exit status 2 and one line on stderr naming the
setting; nothing is started half-configured.
"""

import argparse
import sys
from collections.abc import Sequence
from typing import Any

import uvicorn

from app.config import ConfigError, Settings, load_settings
from app.main import create_app

#: The uvicorn settings the service is measured and shipped with: uvloop + httptools, one
#: process (scale with replicas, not workers), our own access line instead of uvicorn's.
UVICORN_OPTIONS: dict[str, Any] = {
    "loop": "uvloop",
    "http": "httptools",
    "access_log": False,
    "server_header": False,
    "log_config": None,
    "timeout_graceful_shutdown": 20,
}


DEV_HELP = """upload-auth (development mode) on {base}
  v1 credential:  curl {base}/v1/auth
  v2 credential:  curl -X POST {base}/v2/token -H 'Content-Type: application/json' \\
                    -d '{{"fileName": "cat.png", "fileSize": 48213, "mimeType": "image/png"}}'
  API docs:       {base}/docs"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="upload-auth", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text, port in (
        ("serve", "run the credential service", 8000),
        ("dev", "development mode: throwaway keys, no caller authentication", 8000),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--host", default="127.0.0.1", help="address to listen on")
        command.add_argument("--port", type=int, default=port, help="port to listen on")
    return parser


def _settings(command: str) -> Settings:
    if command == "dev":
        return load_settings(dev_mode=True, log_format="text")
    return load_settings()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = _settings(args.command)
    except ConfigError as exc:
        print(f"upload-auth: config error: {exc}", file=sys.stderr)
        return 2
    app = create_app(settings)
    if args.command == "dev":
        print(DEV_HELP.format(base=f"http://{args.host}:{args.port}"), file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, **UVICORN_OPTIONS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
