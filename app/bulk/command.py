"""``upload-auth upload``: the command line of the bulk uploader."""

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from app.core.imagekit.rules import PlanLimits, normalise_folder, parse_size
from app.core.secret_files import read_secret_file

# httpx (which brings rich and pygments with its own command line) only when uploading: every
# `upload-auth` command builds this parser, the servers included (5 MiB of their memory).
if TYPE_CHECKING:
    from app.bulk import transfer


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths",
        nargs="+",
        type=Path,
        metavar="PATH",
        help="files and folders to upload (folders are walked)",
    )
    parser.add_argument(
        "--to", required=True, help="the upload API: https://upload.imagekit.io or ours"
    )
    parser.add_argument(
        "--folder", default="/", help="remote folder to mirror the tree under (default /)"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=8,
        choices=range(1, 65),
        metavar="N",
        help="uploads at a time, 1-64 (default 8)",
    )
    mode = parser.add_argument_group("server-side mode (the default when a private key is set)")
    mode.add_argument(
        "--private-key-file", type=Path, help="the private key (default: $IMAGEKIT_PRIVATE_KEY)"
    )
    client = parser.add_argument_group("client-side mode (credentials from upload-auth)")
    client.add_argument("--auth-url", help="the credential service, e.g. https://auth.example.com")
    client.add_argument(
        "--credential",
        choices=("v1", "v2"),
        default="v2",
        help="which credentials to ask for (default v2)",
    )
    client.add_argument("--profile", help="the profile to ask credentials for")
    client.add_argument(
        "--caller-token-file",
        type=Path,
        help="bearer token for the service (default: $UPLOAD_AUTH_CALLER_TOKEN)",
    )
    checks = parser.add_argument_group("the policy, applied before sending")
    checks.add_argument(
        "--plan",
        choices=("free", "paid"),
        default="free",
        help="the account plan's size limits (default free: 25 MB; paid: 300 MB for video)",
    )
    checks.add_argument("--max-file-size", help="override the plan's limit, e.g. 40mb")
    checks.add_argument("--max-video-size", help="override the plan's video limit")
    checks.add_argument("--types", help="only these extensions, e.g. jpg,png")
    run_group = parser.add_argument_group("the run")
    run_group.add_argument(
        "--manifest",
        type=Path,
        help="resume manifest (default: .upload-auth/manifest-<hash>.jsonl)",
    )
    run_group.add_argument("--report", type=Path, help="write a JSON report here")
    run_group.add_argument(
        "--dry-run",
        action="store_true",
        help="list what would be stored, and where; send and write nothing",
    )
    run_group.add_argument(
        "--retries",
        type=int,
        default=5,
        choices=range(0, 21),
        metavar="N",
        help="retries per file for transient errors (default 5)",
    )
    run_group.add_argument(
        "--no-progress", action="store_true", help="plain lines even on a terminal"
    )


def _limits(args: argparse.Namespace) -> PlanLimits:
    plan = PlanLimits.for_plan(args.plan)
    return PlanLimits(
        parse_size(args.max_file_size) if args.max_file_size else plan.max_size,
        parse_size(args.max_video_size) if args.max_video_size else plan.max_video_size,
    )


def _credentials(args: argparse.Namespace) -> "transfer.Credentials":
    from app.bulk import transfer

    private_key = (
        read_secret_file(args.private_key_file, "--private-key-file")
        if args.private_key_file
        else os.environ.get("IMAGEKIT_PRIVATE_KEY")
    )
    if args.auth_url is None:
        if not private_key:
            raise ValueError(
                "give a private key (server-side mode) or --auth-url (client-side mode)"
            )
        return transfer.ServerSide(args.to, private_key)
    token = (
        read_secret_file(args.caller_token_file, "--caller-token-file")
        if args.caller_token_file
        else os.environ.get("UPLOAD_AUTH_CALLER_TOKEN")
    )
    if args.credential == "v1":
        return transfer.ClientV1(args.to, args.auth_url, token, args.profile)
    return transfer.ClientV2(args.to, args.auth_url, token, args.profile)


def main(args: argparse.Namespace) -> int:
    from app.bulk.runner import Options, default_manifest, run  # rich: only when uploading

    try:
        credentials = _credentials(args)
        limits = _limits(args)
        normalise_folder(args.folder)  # BadFolder, said in one line
    except ValueError as exc:
        print(f"upload-auth upload: {exc}", file=sys.stderr)
        return 2
    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        print(f"upload-auth upload: no such file or folder: {missing[0]}", file=sys.stderr)
        return 2
    types = (
        frozenset(t.strip().lower().lstrip(".") for t in args.types.split(","))
        if args.types
        else None
    )
    options = Options(
        paths=args.paths,
        to=args.to,
        folder=args.folder,
        concurrency=args.concurrency,
        credentials=credentials,
        limits=limits,
        types=types,
        manifest=args.manifest or default_manifest(args.paths, args.to, args.folder),
        report=args.report,
        dry_run=args.dry_run,
        retries=args.retries,
        progress=sys.stdout.isatty() and not args.no_progress,
    )
    return run(options)
