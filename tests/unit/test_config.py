"""Configuration: sources, validation at start-up, one clear line, secrets never printed."""

import subprocess
import sys
from pathlib import Path

import pytest

from app import cli
from app.core.parts import key_ring, keys
from app.core.settings import ConfigError, Settings, load_settings
from app.credential_service.app import create_app
from app.credential_service.parts import policy
from tests.support.apps import new_private_key, new_public_key


@pytest.fixture
def env_pair(monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    public, private = new_public_key(), new_private_key()
    monkeypatch.setenv("IMAGEKIT_PUBLIC_KEY", public)
    monkeypatch.setenv("IMAGEKIT_PRIVATE_KEY", private)
    monkeypatch.setenv("UPLOAD_AUTH_DEV_MODE", "true")
    return public, private


def test_key_pair_from_the_sdk_variables(env_pair: tuple[str, str]) -> None:
    """IMAGEKIT_PUBLIC_KEY / IMAGEKIT_PRIVATE_KEY make the signing pair."""
    ring = key_ring(load_settings())
    assert ring.signing.public_key == env_pair[0]
    assert ring.signing.private_key == env_pair[1].encode()


def test_key_pair_from_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """..._FILE variables read mounted secrets, trailing newline stripped."""
    public, private = new_public_key(), new_private_key()
    (tmp_path / "pub").write_text(public + "\n")
    (tmp_path / "priv").write_text(private + "\n")
    monkeypatch.setenv("IMAGEKIT_PUBLIC_KEY_FILE", str(tmp_path / "pub"))
    monkeypatch.setenv("IMAGEKIT_PRIVATE_KEY_FILE", str(tmp_path / "priv"))
    ring = key_ring(load_settings(dev_mode=True))
    assert (ring.signing.public_key, ring.signing.private_key) == (public, private.encode())


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "upload-auth.toml"
    path.write_text(text)
    return path


def test_config_file_with_several_pairs_and_profiles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The TOML file holds up to five pairs, the signing choice and the profiles."""
    keys = [(new_public_key(), new_private_key()) for _ in range(3)]
    (tmp_path / "k2").write_text(keys[2][1])
    path = write_config(
        tmp_path,
        f"""
dev_mode = true
signing_key = "{keys[1][0]}"
default_profile = "avatar"
credential_ttl = 900

[[keys]]
public_key = "{keys[0][0]}"
private_key = "{keys[0][1]}"

[[keys]]
public_key = "{keys[1][0]}"
private_key = "{keys[1][1]}"

[[keys]]
public_key = "{keys[2][0]}"
private_key_file = "{tmp_path / "k2"}"

[profiles.avatar]
types = ["png", "JPG"]
max_size = "2mb"
folder = "/users/{{caller}}/avatars"
ttl = 300
""",
    )
    monkeypatch.setenv("UPLOAD_AUTH_CONFIG_FILE", str(path))
    settings = load_settings()
    ring = key_ring(settings)
    assert ring.signing.public_key == keys[1][0]
    assert [p.public_key for p in ring] == [k[0] for k in keys]
    avatar = policy(settings).profile(None)
    assert avatar.name == "avatar"
    assert avatar.types == frozenset({"png", "jpg"})
    assert avatar.limits.max_size == 2 * 1024 * 1024
    assert avatar.ttl == 300


def test_environment_overrides_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env_pair: tuple[str, str]
) -> None:
    """An environment variable wins over the same setting in the file."""
    del env_pair
    monkeypatch.setenv(
        "UPLOAD_AUTH_CONFIG_FILE", str(write_config(tmp_path, "credential_ttl = 900\n"))
    )
    monkeypatch.setenv("UPLOAD_AUTH_CREDENTIAL_TTL", "600")
    assert load_settings().credential_ttl == 600


def config_error(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        keys(load_settings())  # what a factory does at start-up
    message = str(info.value)
    assert "\n" not in message
    return message


def test_no_caller_authentication_refuses_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without development mode and with no caller authentication, the service won't start."""
    monkeypatch.setenv("IMAGEKIT_PUBLIC_KEY", new_public_key())
    monkeypatch.setenv("IMAGEKIT_PRIVATE_KEY", new_private_key())
    settings = load_settings()
    with pytest.raises(ConfigError, match="no caller authentication"):
        create_app(settings)


def test_no_key_outside_dev_mode_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Missing keys name IMAGEKIT_PRIVATE_KEY."""
    assert "IMAGEKIT_PRIVATE_KEY" in config_error(monkeypatch)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"IMAGEKIT_PRIVATE_KEY": "private_short"}, "IMAGEKIT_PRIVATE_KEY"),
        (
            {"IMAGEKIT_PRIVATE_KEY": "private_with space 0123456789abcdefghijk"},
            "IMAGEKIT_PRIVATE_KEY",
        ),
        ({"UPLOAD_AUTH_CREDENTIAL_TTL": "3600"}, "UPLOAD_AUTH_CREDENTIAL_TTL"),
        ({"UPLOAD_AUTH_CREDENTIAL_TTL": "soon"}, "UPLOAD_AUTH_CREDENTIAL_TTL"),
        ({"UPLOAD_AUTH_PLAN": "gold"}, "UPLOAD_AUTH_PLAN"),
        ({"UPLOAD_AUTH_SIGNING_KEY": "public_other"}, "keys"),
        ({"UPLOAD_AUTH_DEFAULT_PROFILE": "avatar"}, "UPLOAD_AUTH_DEFAULT_PROFILE"),
        ({"UPLOAD_AUTH_CREDENTIAL_TLL": "60"}, "UPLOAD_AUTH_CREDENTIAL_TLL"),
        ({"IMAGEKIT_PRIVATE_KEY_FILE": "/nonexistent/key"}, "IMAGEKIT_PRIVATE_KEY_FILE"),
        ({"UPLOAD_AUTH_CONFIG_FILE": "/nonexistent.toml"}, "UPLOAD_AUTH_CONFIG_FILE"),
        # lists and tables in the environment are JSON; a plain string is one line, not a trace
        ({"UPLOAD_AUTH_TRUSTED_PROXIES": "127.0.0.1"}, "UPLOAD_AUTH_TRUSTED_PROXIES"),
        ({"UPLOAD_AUTH_CORS_ORIGINS": "https://a.example"}, "UPLOAD_AUTH_CORS_ORIGINS"),
        ({"UPLOAD_AUTH_CALLERS": '{"api_keys": ['}, "UPLOAD_AUTH_CALLERS"),
        ({"UPLOAD_AUTH_FETCH_ALLOW_NETWORKS": "10.0.0.0/8"}, "UPLOAD_AUTH_FETCH_ALLOW_NETWORKS"),
        ({"UPLOAD_AUTH_PROFILES": "default"}, "UPLOAD_AUTH_PROFILES"),
    ],
)
def test_bad_settings_stop_with_one_line_naming_them(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], named: str
) -> None:
    """Each bad value gives one line that names the setting and never echoes a secret."""
    base = {
        "IMAGEKIT_PUBLIC_KEY": new_public_key(),
        "IMAGEKIT_PRIVATE_KEY": new_private_key(),
        "UPLOAD_AUTH_DEV_MODE": "true",
    }
    if "IMAGEKIT_PRIVATE_KEY_FILE" in env:
        del base["IMAGEKIT_PRIVATE_KEY"]
    merged = {**base, **env}
    message = config_error(monkeypatch, **merged)
    assert named in message
    for name in ("IMAGEKIT_PRIVATE_KEY",):
        if name in merged:
            assert merged[name] not in message


@pytest.mark.parametrize(
    ("toml", "named"),
    [
        ("credential_tll = 5\n", "credential_tll"),
        ("[profiles.a]\ntypes = ['exe']\n", "profiles.a.types"),
        ("[profiles.a]\nfolder = '/a b'\n", "profiles.a.folder"),
        ("[profiles.a]\nmax_size = 'lots'\n", "profiles.a.max_size"),
        ("[profiles.a]\nttl = 7200\n", "profiles.a.ttl"),
        ("[[keys]]\npublic_key = 'p'\n", "keys.0"),
        (
            "".join(
                f"[[keys]]\npublic_key = 'p{i}'\nprivate_key = '{'x' * 40}{i}'\n" for i in range(6)
            ),
            "keys",
        ),
        ("[[keys]]\npublic_key = 'p'\nprivate_key = 'x'\n", "keys[p].private_key"),
    ],
)
def test_bad_config_file_names_the_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, toml: str, named: str
) -> None:
    """A bad config-file entry is named by its path in the file."""
    message = config_error(
        monkeypatch,
        UPLOAD_AUTH_DEV_MODE="true",
        UPLOAD_AUTH_CONFIG_FILE=str(write_config(tmp_path, toml)),
    )
    assert named in message


def test_duplicate_pairs_are_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Two pairs with one public key, or one private key, are a configuration error."""
    key = new_private_key()
    toml = "".join(f"[[keys]]\npublic_key = 'p{i}'\nprivate_key = '{key}'\n" for i in range(2))
    message = config_error(
        monkeypatch,
        UPLOAD_AUTH_DEV_MODE="true",
        UPLOAD_AUTH_CONFIG_FILE=str(write_config(tmp_path, toml)),
    )
    assert "share a private key" in message
    assert key not in message


def test_dev_mode_generates_a_throwaway_pair_once_per_process() -> None:
    """Development mode with no keys signs with a pair made once per process: both apps of
    one process (and every rebuild) sign and verify with it; the next start has a new one."""
    first, second = key_ring(Settings(dev_mode=True)), key_ring(Settings(dev_mode=True))
    assert first.signing.public_key.startswith("public_dev_")
    assert first.signing == second.signing
    script = "from app.core.parts import development_pair; print(development_pair().public_key)"
    other = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert other.startswith("public_dev_")
    assert other != first.signing.public_key


def test_secrets_are_not_in_repr(env_pair: tuple[str, str]) -> None:
    """repr and str of settings and keys never show the private key."""
    settings = load_settings()
    texts = [
        repr(settings),
        str(settings),
        repr(key_ring(settings).signing),
        repr(list(key_ring(settings))),
        settings.model_dump_json(),
    ]
    assert not any(env_pair[1] in text for text in texts)


def test_cli_config_error_exits_2_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`upload-auth serve` with bad config prints one line on stderr and exits 2."""
    secret = new_private_key()
    monkeypatch.setenv("IMAGEKIT_PUBLIC_KEY", new_public_key())
    monkeypatch.setenv("IMAGEKIT_PRIVATE_KEY", secret)
    assert cli.main(["serve"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("upload-auth: config error: ")
    assert secret not in err


def test_the_log_level_in_any_case(
    env_pair: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`warning` as well as `WARNING`: the way people write it is not a start-up error."""
    del env_pair
    monkeypatch.setenv("UPLOAD_AUTH_LOG_LEVEL", "warning")
    assert load_settings(dev_mode=True).log_level == "WARNING"
    monkeypatch.setenv("UPLOAD_AUTH_LOG_LEVEL", "loud")
    with pytest.raises(ConfigError, match="UPLOAD_AUTH_LOG_LEVEL"):
        load_settings(dev_mode=True)
