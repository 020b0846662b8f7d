"""The README's production set-up, run as written (#29): its commands and its config file from
the README itself, with only what a reader substitutes changed (the example key's hash for the
one ``new-api-key`` printed, the key placeholders and paths, the host names). The back end's
curl gets a credential; then the README's browser snippet, in Chromium, uploads through the
back end's relay (docs/clients.md's Python relay) and the file lands in the self-hosted upload
API the README points to."""

import json
import re
import subprocess
import tomllib
from contextlib import ExitStack
from pathlib import Path

from playwright.sync_api import Page

from tests.support.apps import new_private_key, new_public_key
from tests.support.relay import CHOSEN, app_origin, choose, relay, write_page
from tests.support.samples import png
from tests.support.servers import BIN, clean_env, free_port, redis_server, running, running_argv

README = Path(__file__).parents[2] / "README.md"


def section_blocks() -> list[tuple[str, str]]:
    """The fenced blocks (language, text) of the README's "Add it to your app"."""
    text = README.read_text()
    section = text[text.index("## Add it to your app") : text.index("## Endpoints")]
    return re.findall(r"```(\w+)\n(.*?)```", section, re.S)


def one(blocks: list[tuple[str, str]], language: str, containing: str) -> str:
    (found,) = [text for lang, text in blocks if lang == language and containing in text]
    return found


def shell(command: str) -> str:
    """A console block's command: the prompt and line continuations gone."""
    return command.replace("\\\n", " ").strip().removeprefix("$ ").splitlines()[0]


def test_the_readmes_production_set_up_as_written(page: Page, tmp_path: Path) -> None:
    blocks = section_blocks()
    # 1. the API key, by the README's own command
    new_key = shell(one(blocks, "console", "new-api-key"))
    made = subprocess.run(
        ["sh", "-c", new_key.replace("upload-auth", str(BIN / "upload-auth"), 1)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    api_key = re.search(r"uak_[\w-]+", made)
    key_hash = re.search(r"sha256:[0-9a-f]{64}", made)
    assert api_key is not None, made
    assert key_hash is not None, made
    # 2. the README's config file, the example's hash replaced by the printed one
    config = one(blocks, "toml", "[[callers.api_keys]]")
    config = re.sub(r"sha256:[0-9a-f]{64}", key_hash[0], config)
    assert tomllib.loads(config)["callers"]["api_keys"][0]["name"] == "shop-backend"
    (tmp_path / "config.toml").write_text(config)
    (tmp_path / "private").write_text(new_private_key() + "\n")
    public = new_public_key()
    app_port = free_port()
    origin = f"http://127.0.0.1:{app_port}"
    with ExitStack() as stack:
        # the self-hosted upload API the README points to (docs/deploy.md), one Redis for both
        redis_url = stack.enter_context(redis_server(tmp_path / "redis.log"))
        uploads = stack.enter_context(
            running(
                ["upload-api"],
                env=clean_env(
                    IMAGEKIT_PUBLIC_KEY=public,
                    IMAGEKIT_PRIVATE_KEY_FILE=str(tmp_path / "private"),
                    UPLOAD_AUTH_STORAGE_DIR=str(tmp_path / "store"),
                    UPLOAD_AUTH_REDIS_URL=redis_url,
                    UPLOAD_AUTH_CORS_ORIGINS=json.dumps([origin]),
                ),
                log=tmp_path / "upload-api.log",
            )
        )
        # 3. the README's serve command
        port = free_port()
        command = (
            shell(one(blocks, "console", "upload-auth serve"))
            .replace("public_...", public)
            .replace("/run/secrets/imagekit_private_key", str(tmp_path / "private"))
            .replace("/etc/upload-auth/config.toml", str(tmp_path / "config.toml"))
            .replace("upload-auth serve", f"{BIN / 'upload-auth'} serve")
            .replace("--host 0.0.0.0", f"--host 127.0.0.1 --port {port}")
        )
        service = stack.enter_context(
            running_argv(
                ["bash", "-c", command],  # bash execs a lone command: the server is the process
                port=port,
                env=clean_env(
                    UPLOAD_AUTH_UPLOAD_API_URL=uploads.url, UPLOAD_AUTH_REDIS_URL=redis_url
                ),
                log=tmp_path / "service.log",
            )
        )
        # 4. the back end's curl, as written
        curl = shell(one(blocks, "console", "curl")).replace(
            "https://upload-auth.internal", service.url
        )
        answer = subprocess.run(
            ["sh", "-c", curl],
            env={**clean_env(), "UPLOAD_AUTH_KEY": api_key[0]},
            capture_output=True,
            text=True,
            check=True,
        )
        grant = json.loads(answer.stdout)
        assert grant["fields"]["folder"] == "/products", grant
        assert grant["uploadUrl"] == uploads.url + "/api/v2/files/upload"
        # 5. the README's browser snippet, through the back end's relay
        back_end = stack.enter_context(
            relay(
                "python",
                tmp_path,
                clean_env(UPLOAD_AUTH_URL=service.url, UPLOAD_AUTH_API_KEY=api_key[0]),
            )
        )
        site = tmp_path / "site"
        site.mkdir()
        write_page(site, one(blocks, "js", "credentialUrl"))
        stack.enter_context(app_origin(tmp_path, app_port, site, back_end.url))
        picture = tmp_path / "sku-1.png"
        picture.write_bytes(png(8, 8))
        choose(page, origin, picture)
        stored = page.evaluate(f"async () => await window.asWritten({CHOSEN})")
        log = service.output()
    assert stored["filePath"].startswith("/products/sku-1")
    landed = [p for p in (tmp_path / "store" / "files").rglob("*") if p.is_file()]
    assert [p.read_bytes() for p in landed] == [picture.read_bytes()]
    assert api_key[0] not in log
