"""The bulk uploader end to end: real upload API (and credential service) processes on
loopback, the uploader as its own process, killed halfway and resumed."""

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
import redis

from app.credential_service.callers.api_keys import hash_api_key, new_api_key
from tests.support.apps import new_private_key, new_public_key
from tests.support.samples import png
from tests.support.servers import BIN, Server, clean_env, free_port, redis_server, running

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def make_tree(root: Path, count: int) -> dict[str, bytes]:
    """``count`` small text files in nested folders, plus one the policy refuses."""
    files: dict[str, bytes] = {}
    for i in range(count):
        relative = f"set-{i % 5}/part {i % 7}/file-{i:04d}.txt"
        data = f"file {i}\n".encode() * (1 + i % 50)
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)
        files[relative] = data
    (root / "set-0" / "program.exe").write_bytes(b"MZ\x90\x00")
    return files


def remote(relative: str) -> str:
    """Where a source file lands: segments in ImageKit's alphabet under /bulk."""
    *folders, name = relative.split("/")
    return "/".join(["bulk", *(f.replace(" ", "_") for f in folders), name])


def stored(storage: Path) -> dict[str, bytes]:
    base = storage / "files"
    return {p.relative_to(base).as_posix(): p.read_bytes() for p in base.rglob("*") if p.is_file()}


@pytest.fixture
def keys() -> dict[str, str]:
    return {"IMAGEKIT_PUBLIC_KEY": new_public_key(), "IMAGEKIT_PRIVATE_KEY": new_private_key()}


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A Redis shared by the credential service and the upload API (v1 grants)."""
    with redis_server(tmp_path / "redis.log") as url:
        yield url


@pytest.fixture
def upload_api(tmp_path: Path, keys: dict[str, str], redis_url: str) -> Iterator[Server]:
    env = clean_env(
        **keys, UPLOAD_AUTH_STORAGE_DIR=str(tmp_path / "store"), UPLOAD_AUTH_REDIS_URL=redis_url
    )
    with running(["upload-api"], env=env, log=tmp_path / "api.log") as server:
        yield server


def upload_run(
    args: list[str], *, env: dict[str, str], cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``upload-auth upload ARGS`` to the end, its output captured."""
    return subprocess.run(
        [str(BIN / "upload-auth"), "upload", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def uploader(args: list[str], *, env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(BIN / "upload-auth"), "upload", *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_five_hundred_files_killed_halfway_and_resumed(
    tmp_path: Path, keys: dict[str, str], upload_api: Server
) -> None:
    """500 files, 8 at a time, SIGKILLed halfway; the rerun uploads only the rest, and the store
    ends up with every file exactly once, byte for byte; the refused .exe is only reported."""
    files = make_tree(tmp_path / "src", 500)
    env = clean_env(IMAGEKIT_PRIVATE_KEY=keys["IMAGEKIT_PRIVATE_KEY"])
    manifest = tmp_path / "manifest.jsonl"
    args = [
        "src",
        "--to",
        upload_api.url,
        "--folder",
        "/bulk",
        "--concurrency",
        "8",
        "--manifest",
        str(manifest),
        "--report",
        str(tmp_path / "report.json"),
    ]
    first = uploader(args, env=env, cwd=tmp_path)
    deadline = time.monotonic() + 60
    while not manifest.exists() or len(manifest.read_text().splitlines()) < 200:
        assert first.poll() is None, "finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=30)
    done_before = len(manifest.read_text().splitlines())
    assert done_before < 500

    second = uploader(args, env=env, cwd=tmp_path)
    output, _ = second.communicate(timeout=120)
    assert second.returncode == 0, output
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["totals"]["skipped"] >= done_before
    assert report["totals"]["uploaded"] + report["totals"]["skipped"] == 500
    assert report["refused"][0]["path"].endswith("program.exe")
    assert "refused  src/set-0/program.exe" in output

    in_store = stored(upload_api_storage(upload_api))
    assert in_store == {remote(relative): data for relative, data in files.items()}
    redone = [
        p
        for p in (upload_api_storage(upload_api) / "meta").iterdir()
        if json.loads(p.read_text())["version"] > 1
    ]
    assert len(redone) <= 8  # only uploads in flight at the kill were sent again


def upload_api_storage(server: Server) -> Path:
    return Path(server.log).parent / "store"


@pytest.mark.parametrize("answer", ["unavailable", "forgotten"])
def test_a_flaky_upload_api_is_retried_to_the_end(
    tmp_path: Path, keys: dict[str, str], answer: str
) -> None:
    """Every 5th request fails, with a 503 or with the 400 of a ledger that lost its data
    ("fetch a new credential"): the uploader retries, with a fresh credential, and finishes."""
    files = make_tree(tmp_path / "src", 40)
    env = clean_env(
        **keys,
        UPLOAD_AUTH_STORAGE_DIR=str(tmp_path / "store"),
        PYTHONPATH=str(ROOT),
        FLAKY_ANSWER=answer,
    )
    command = ["-m", "uvicorn", "tests.bulk.flaky_app:create", "--factory"]
    with running(command, env=env, log=tmp_path / "api.log") as flaky:
        result = subprocess.run(
            [
                str(BIN / "upload-auth"),
                "upload",
                "src",
                "--to",
                flaky.url,
                "--folder",
                "/bulk",
                "--concurrency",
                "4",
                "--report",
                "report.json",
            ],
            env=clean_env(IMAGEKIT_PRIVATE_KEY=keys["IMAGEKIT_PRIVATE_KEY"]),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["totals"]["uploaded"] == 40
    assert report["totals"]["retries"] >= 40 // 5
    assert "retry" in result.stdout
    assert stored(tmp_path / "store") == {remote(r): d for r, d in files.items()}


def credential_service(
    keys: dict[str, str], upload_api: Server, redis_url: str, log: Path, folder: str = "/"
) -> tuple[str, AbstractContextManager[Server]]:
    """A credential service for the bulk uploader's client-side mode: an API key (returned)
    for a caller whose profile overwrites, v1 allowed, under ``folder``, on the upload API's
    Redis."""
    api_key = new_api_key()
    env = clean_env(
        **keys,
        UPLOAD_AUTH_CALLERS=json.dumps(
            {"api_keys": [{"name": "bulk", "hash": hash_api_key(api_key)}]}
        ),
        UPLOAD_AUTH_PROFILES=json.dumps(
            {
                "bulk": {
                    "use_unique_file_name": False,
                    "overwrite": True,
                    "allow_v1": True,
                    "folder": folder,
                }
            }
        ),
        UPLOAD_AUTH_DEFAULT_PROFILE="bulk",
        UPLOAD_AUTH_UPLOAD_API_URL=upload_api.url,
        UPLOAD_AUTH_REDIS_URL=redis_url,
    )
    return api_key, running(["serve"], env=env, log=log)


def client_side(upload_api: Server, service: Server, credential: str) -> list[str]:
    """``upload-auth upload`` arguments for src/ with credentials from ``service``."""
    return [
        "src",
        *("--to", upload_api.url, "--folder", "/bulk", "--auth-url", service.url),
        *("--credential", credential, "--caller-token-file", "token"),
    ]


@pytest.mark.parametrize("credential", ["v1", "v2"])
def test_client_side_mode(
    tmp_path: Path, keys: dict[str, str], upload_api: Server, redis_url: str, credential: str
) -> None:
    """Credentials from a running credential service (API-key caller), v1 and v2."""
    files = make_tree(tmp_path / "src", 30)
    api_key, service_running = credential_service(
        keys, upload_api, redis_url, tmp_path / "service.log"
    )
    (tmp_path / "token").write_text(api_key + "\n")
    with service_running as service:
        args = client_side(upload_api, service, credential)
        result = upload_run(args, env=clean_env(), cwd=tmp_path)
        service_log = service.output()
    assert result.returncode == 0, result.stdout + result.stderr
    assert stored(upload_api_storage(upload_api)) == {remote(r): d for r, d in files.items()}
    assert api_key not in result.stdout + service_log


@pytest.mark.parametrize("credential", ["v1", "v2"])
def test_the_tree_is_finished_through_redis_wipes(
    tmp_path: Path, keys: dict[str, str], upload_api: Server, redis_url: str, credential: str
) -> None:
    """Redis is flushed every few tenths of a second while the uploader runs: the ledger
    begins new epochs, credentials issued before one are refused with "fetch a new
    credential", and the uploader fetches new ones and finishes the tree (#28)."""
    files = make_tree(tmp_path / "src", 150)
    api_key, service_running = credential_service(
        keys, upload_api, redis_url, tmp_path / "service.log"
    )
    (tmp_path / "token").write_text(api_key + "\n")
    with service_running as service:
        args = [*client_side(upload_api, service, credential), "--concurrency", "8"]
        run = uploader([*args, "--report", "report.json"], env=clean_env(), cwd=tmp_path)
        wipes = 0
        with redis.Redis.from_url(redis_url) as client:
            while run.poll() is None and wipes < 200:
                time.sleep(0.15)
                client.flushall()
                wipes += 1
        output, _ = run.communicate(timeout=120)
        service_log = service.output()
    assert run.returncode == 0, output
    assert wipes >= 3  # the run outlasted several wipes
    # Whichever of the two touches Redis first after a wipe begins the new epoch and says so.
    assert "lost its data" in upload_api.output() + service_log
    assert stored(upload_api_storage(upload_api)) == {remote(r): d for r, d in files.items()}


def test_a_folder_outside_the_profiles_is_named(
    tmp_path: Path, keys: dict[str, str], upload_api: Server, redis_url: str
) -> None:
    """Credentials from a profile whose folder is /products, the tree sent to /bulk: every
    file would be refused, so the run stops at the first refusal with one sentence naming the
    folder the profile allows, not a refusal per file (#29)."""
    make_tree(tmp_path / "src", 30)
    api_key, service_running = credential_service(
        keys, upload_api, redis_url, tmp_path / "service.log", folder="/products"
    )
    (tmp_path / "token").write_text(api_key + "\n")
    with service_running as service:
        result = upload_run(
            [*client_side(upload_api, service, "v2"), "--no-progress"],
            env=clean_env(),
            cwd=tmp_path,
        )
    assert result.returncode == 1, result.stdout
    (stopped,) = [line for line in result.stdout.splitlines() if line.startswith("stopped: ")]
    assert stopped.endswith("is outside this profile's folder /products: pass --folder within it")
    assert result.stdout.count("\n") < 12, result.stdout  # not a line per file


def test_dry_run_and_usage_errors(tmp_path: Path, upload_api: Server) -> None:
    """--dry-run lists and sends nothing, and says why a file 51 folders down (deeper than
    ImageKit nests) would be refused (it used to end in a traceback); a bad --folder, no key
    and no --auth-url are usage errors (2), each in one line."""
    make_tree(tmp_path / "src", 3)
    deep = (tmp_path / "src").joinpath(*(f"d{i}" for i in range(51)))
    deep.mkdir(parents=True)
    (deep / "deep.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"x" * 10)
    key = clean_env(IMAGEKIT_PRIVATE_KEY=new_private_key())
    dry = upload_run(
        ["src", "--to", upload_api.url, "--dry-run"], env=key, cwd=tmp_path, timeout=60
    )
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    assert sum(line.startswith("would upload") for line in lines) == 3
    assert lines[-1].startswith("dry run: 3 would upload")
    assert lines[-1].endswith("nothing was sent and nothing written")
    assert not (tmp_path / ".upload-auth").exists()  # no manifest, not even its folder
    assert "folder may be at most 50 levels deep" in dry.stdout + dry.stderr
    assert "Traceback" not in dry.stdout + dry.stderr
    assert stored(upload_api_storage(upload_api)) == {}
    folder = upload_run(
        ["src", "--to", upload_api.url, "--folder", "a b", "--dry-run"],
        env=key,
        cwd=tmp_path,
        timeout=60,
    )
    assert folder.returncode == 2
    assert folder.stderr.strip() == "upload-auth upload: folder may only contain a-z A-Z 0-9 / _ -"
    usage = upload_run(["src", "--to", upload_api.url], env=clean_env(), cwd=tmp_path, timeout=60)
    assert usage.returncode == 2
    assert "--auth-url" in usage.stderr


def test_interrupt_stops_cleanly(tmp_path: Path, keys: dict[str, str], upload_api: Server) -> None:
    """SIGINT (Ctrl-C) stops the run: exit 130, a summary, and a manifest to resume from."""
    make_tree(tmp_path / "src", 400)
    manifest = tmp_path / "m.jsonl"
    process = uploader(
        ["src", "--to", upload_api.url, "--concurrency", "2", "--manifest", str(manifest)],
        env=clean_env(IMAGEKIT_PRIVATE_KEY=keys["IMAGEKIT_PRIVATE_KEY"]),
        cwd=tmp_path,
    )
    while not manifest.exists() or len(manifest.read_text().splitlines()) < 20:
        assert process.poll() is None
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 130, output
    assert "interrupted: rerun to carry on" in output
    assert 20 <= len(manifest.read_text().splitlines()) < 400


@pytest.mark.parametrize("case", ["nothing listens", "not a URL", "wrong key"])
def test_a_fatal_answer_stops_the_run_with_one_sentence(
    tmp_path: Path, upload_api: Server, case: str
) -> None:
    """Connection refused, an address that is not http, a key the upload API does not know:
    every file would get the same answer, so the run stops before the first (the addresses and
    the key are checked first), with one sentence naming the host and what to check, instead
    of retrying each file."""
    make_tree(tmp_path / "src", 30)
    to = {
        "nothing listens": f"http://127.0.0.1:{free_port()}",
        "not a URL": "htp://127.0.0.1:1",
        "wrong key": upload_api.url,
    }[case]
    started = time.monotonic()
    result = upload_run(
        ["src", "--to", to, "--no-progress"],
        env=clean_env(IMAGEKIT_PRIVATE_KEY=new_private_key()),
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    stopped = [
        line
        for line in result.stdout.splitlines()
        if line.startswith("stopped before the first file: ")
    ]
    assert len(stopped) == 1, result.stdout
    assert " 0 uploaded, 0 skipped" in " " + result.stdout.splitlines()[-1]
    assert ", 0 failed," in result.stdout  # no file was tried
    assert ("--to" in stopped[0]) if case != "wrong key" else ("403" in stopped[0])
    assert "retry" not in result.stdout
    assert result.stdout.count("\n") < 12  # not a line per file
    assert time.monotonic() - started < 20


def on_a_terminal(args: list[str], *, env: dict[str, str], cwd: Path) -> tuple[int, str]:
    """``upload-auth upload ARGS`` with its output on a pseudo-terminal (so the progress bar
    is drawn), to the end: the exit status and everything it printed."""
    primary, secondary = os.openpty()
    process = subprocess.Popen(
        [str(BIN / "upload-auth"), "upload", *args],
        env={**env, "COLUMNS": "160", "TERM": "xterm"},
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=secondary,
        stderr=secondary,
    )
    os.close(secondary)
    output = b""
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # EIO: the other side is closed
            break
        if not chunk:
            break
        output += chunk
    os.close(primary)
    return process.wait(timeout=60), output.decode(errors="replace")


def test_a_files_failure_is_shown_above_the_progress_bar(
    tmp_path: Path, keys: dict[str, str], upload_api: Server
) -> None:
    """With the progress bar drawn, a file the upload API refuses still gets its own line,
    with the reason (it used to show only as "1 failed")."""
    source = tmp_path / "src"
    source.mkdir()
    (source / "good.png").write_bytes(png())
    (source / "fake.png").write_bytes(b"this is text, not a PNG at all" * 4)
    status, output = on_a_terminal(
        ["src", "--to", upload_api.url, "--concurrency", "1"],
        env=clean_env(IMAGEKIT_PRIVATE_KEY=keys["IMAGEKIT_PRIVATE_KEY"]),
        cwd=tmp_path,
    )
    assert status == 1, output
    assert "uploading" in output  # the bar was drawn
    refused = [line for line in output.splitlines() if "fake.png" in line and "refused" in line]
    assert refused, output
    assert "400" in refused[0]
    assert "1 uploaded" in output


def test_a_rate_limit_is_waited_for_and_named(
    tmp_path: Path, keys: dict[str, str], upload_api: Server, redis_url: str
) -> None:
    """On 429 the uploader waits what Retry-After says and says which limit it hit; the run
    then finishes."""
    make_tree(tmp_path / "src", 4)
    api_key = new_api_key()
    service_env = clean_env(
        **keys,
        UPLOAD_AUTH_CALLERS=json.dumps(
            {"api_keys": [{"name": "bulk", "hash": hash_api_key(api_key)}]}
        ),
        UPLOAD_AUTH_UPLOAD_API_URL=upload_api.url,
        UPLOAD_AUTH_RATE_LIMIT_V2="2/second",
        UPLOAD_AUTH_REDIS_URL=redis_url,
    )
    (tmp_path / "token").write_text(api_key)
    with running(["serve"], env=service_env, log=tmp_path / "service.log") as service:
        args = ["src", "--to", upload_api.url, "--auth-url", service.url]
        args += ["--caller-token-file", "token", "--concurrency", "1", "--no-progress"]
        result = upload_run(
            args,
            env=clean_env(),
            cwd=tmp_path,
        )
    assert result.returncode == 0, result.stdout + result.stderr
    waits = [line for line in result.stdout.splitlines() if line.startswith("retry")]
    assert waits, result.stdout
    assert re.search(r"in [12] s \(429: at most 2 v2 credentials per 1 seconds\)", waits[0])
