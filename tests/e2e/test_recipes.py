"""The curl recipe of docs/mobile.md, run exactly as written against real servers."""

import json
import re
import subprocess
from pathlib import Path

import pytest

from app.credential_service.callers.api_keys import hash_api_key, new_api_key
from tests.support.apps import new_private_key, new_public_key
from tests.support.samples import png
from tests.support.servers import clean_env, require_program, running

pytestmark = pytest.mark.e2e

DOC = Path(__file__).resolve().parents[2] / "docs" / "mobile.md"


def recipe() -> str:
    match = re.search(
        r"<!-- recipe:curl -->\n```bash\n(.*?)```\n<!-- /recipe:curl -->",
        DOC.read_text(),
        re.DOTALL,
    )
    assert match, "the curl recipe markers are missing from docs/mobile.md"
    return match.group(1)


def test_curl_recipe_uploads_a_file(tmp_path: Path) -> None:
    """The documented curl + jq recipe gets a v2 credential with a user's token and uploads."""
    for program in ("bash", "curl", "jq"):
        require_program(program)
    keys = {"IMAGEKIT_PUBLIC_KEY": new_public_key(), "IMAGEKIT_PRIVATE_KEY": new_private_key()}
    user_token = new_api_key()
    storage = tmp_path / "store"
    with running(
        ["upload-api"],
        env=clean_env(**keys, UPLOAD_AUTH_STORAGE_DIR=str(storage)),
        log=tmp_path / "api.log",
    ) as upload_api:
        callers = json.dumps(
            {"api_keys": [{"name": "phone-user", "hash": hash_api_key(user_token)}]}
        )
        service_env = clean_env(
            **keys, UPLOAD_AUTH_CALLERS=callers, UPLOAD_AUTH_UPLOAD_API_URL=upload_api.url
        )
        with running(["serve"], env=service_env, log=tmp_path / "service.log") as service:
            photo = tmp_path / "holiday photo.png"
            photo.write_bytes(png(16, 9))
            script = tmp_path / "recipe.sh"
            script.write_text(recipe())
            result = subprocess.run(
                ["bash", "-euo", "pipefail", str(script)],
                env=clean_env(
                    UPLOAD_AUTH_URL=service.url,
                    USER_TOKEN=user_token,
                    FILE=str(photo),
                    MIME_TYPE="image/png",
                ),
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
    assert result.returncode == 0, result.stdout + result.stderr
    uploaded = json.loads(result.stdout)
    assert (uploaded["width"], uploaded["height"]) == (16, 9)
    assert uploaded["name"].startswith("holiday_photo")
    assert (storage / "files" / uploaded["name"]).read_bytes() == png(16, 9)
