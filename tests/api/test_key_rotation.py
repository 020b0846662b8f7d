"""Key rotation without a restart: the keys are re-read from their files when they change or
on SIGHUP; a bad edit keeps the keys that work."""

import asyncio
import os
import signal
from pathlib import Path

import pytest

from app.core.settings import load_settings
from tests.support.apps import FakeClock, in_process, new_private_key, new_public_key
from tests.support.samples import v1_signature

pytestmark = pytest.mark.anyio


def write_config(path: Path, pairs: list[tuple[str, Path]], signing: str) -> None:
    lines = ["dev_mode = true", f'signing_key = "{signing}"']
    for public, key_file in pairs:
        lines += ["[[keys]]", f'public_key = "{public}"', f'private_key_file = "{key_file}"']
    path.write_text("\n".join(lines) + "\n")


async def test_rotation_by_file_edit_and_sighup(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    clock: FakeClock,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Add a pair and switch signing (SIGHUP), then remove the old pair (file watch): each
    step takes effect without a restart; a broken key file is refused and the keys stay."""
    old_public, new_public = new_public_key(), new_public_key()
    old_private, new_private = new_private_key(), new_private_key()
    (tmp_path / "old.key").write_text(old_private + "\n")
    (tmp_path / "new.key").write_text(new_private + "\n")
    config = tmp_path / "upload-auth.toml"
    write_config(config, [(old_public, tmp_path / "old.key")], old_public)
    monkeypatch.setenv("UPLOAD_AUTH_CONFIG_FILE", str(config))
    settings = load_settings(rate_limit_v1="off")

    async with in_process(settings, clock) as http:

        async def signer() -> str:
            body = (await http.get("/v1/auth")).json()
            key = new_private if body["publicKey"] == new_public else old_private
            assert body["signature"] == v1_signature(key.encode(), body["token"], body["expire"])
            return str(body["publicKey"])

        assert await signer() == old_public

        # 1 + 2: add the new pair and sign with it; SIGHUP reloads at once
        write_config(
            config,
            [(old_public, tmp_path / "old.key"), (new_public, tmp_path / "new.key")],
            new_public,
        )
        os.kill(os.getpid(), signal.SIGHUP)
        await asyncio.sleep(0.05)
        assert await signer() == new_public

        # a bad edit: the new key file emptied by mistake -> refused, keys kept
        (tmp_path / "new.key").write_text("")
        os.kill(os.getpid(), signal.SIGHUP)
        await asyncio.sleep(0.05)
        assert await signer() == new_public
        (tmp_path / "new.key").write_text(new_private + "\n")

        # 4: the old pair removed; the file watch notices without a signal
        write_config(config, [(new_public, tmp_path / "new.key")], new_public)
        for _ in range(60):
            await asyncio.sleep(0.1)
            ring_publics = await http.get("/v1/auth", params={"publicKey": old_public})
            if ring_publics.status_code == 422:
                break
        assert ring_publics.json()["type"] == "/problems/unknown-key"
        assert await signer() == new_public

    out = capsys.readouterr().out
    assert out.count('"keys reloaded"') >= 2
    assert "key reload failed" in out
    assert new_private not in out
    assert old_private not in out
