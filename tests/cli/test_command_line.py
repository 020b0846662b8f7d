"""The command line explains itself: its version, one line and exit 2 for every configuration
error (a malformed TOML file with where, an unknown key with the closest valid name), one line
for a busy port, and the demo page at / in development mode."""

import socket
from pathlib import Path

import pytest

from app import cli, package_version
from tests.support.apps import new_private_key, new_public_key


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    """`upload-auth --version` prints the package's version (pyproject's)."""
    with pytest.raises(SystemExit) as exited:
        cli.main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"upload-auth {package_version()}\n"
    assert package_version() == "0.1.0"


def one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert cli.main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1, err
    return err


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGEKIT_PUBLIC_KEY", new_public_key())
    monkeypatch.setenv("IMAGEKIT_PRIVATE_KEY", new_private_key())


@pytest.mark.usefixtures("keys")
def test_malformed_toml_is_one_line_with_where(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A TOML syntax error names the file, the line and the column; exit 2, no traceback."""
    config = tmp_path / "upload-auth.toml"
    config.write_text('credential_ttl = 900\n[profiles.avatar\ntypes = ["png"]\n')
    monkeypatch.setenv("UPLOAD_AUTH_CONFIG_FILE", str(config))
    err = one_line_error(capsys, ["serve"])
    assert str(config) in err
    assert "line 2" in err
    assert "column" in err


@pytest.mark.usefixtures("keys")
@pytest.mark.parametrize(
    ("toml", "hint"),
    [
        ("credential_tll = 900\n", "'credential_ttl'"),
        ('[profiles.avatar]\nmax_sise = "1mb"\n', "'max_size'"),
        (
            '[callers.idp]\njwks_url = "https://x.test/j"\nissuer = "i"\naudiance = "a"\n',
            "'audience'",
        ),
    ],
)
def test_an_unknown_key_names_the_closest_valid_one(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    toml: str,
    hint: str,
) -> None:
    """A typo in the config file, at any depth, says which key was meant."""
    config = tmp_path / "upload-auth.toml"
    config.write_text(toml)
    monkeypatch.setenv("UPLOAD_AUTH_CONFIG_FILE", str(config))
    err = one_line_error(capsys, ["serve"])
    assert f"did you mean {hint}" in err


@pytest.mark.usefixtures("keys")
def test_an_unknown_variable_names_the_closest_valid_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("UPLOAD_AUTH_RATE_LIMT_V1", "10/minute")
    err = one_line_error(capsys, ["serve"])
    assert (
        "UPLOAD_AUTH_RATE_LIMT_V1: unknown setting (did you mean UPLOAD_AUTH_RATE_LIMIT_V1?)" in err
    )


def test_a_busy_port_is_one_line_naming_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing is printed as ready when the port is taken: one line, exit 2."""
    monkeypatch.setenv("UPLOAD_AUTH_STORAGE_DIR", str(tmp_path / "store"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        err = one_line_error(capsys, ["dev", "--port", str(port)])
    assert f"port {port} on 127.0.0.1 is in use" in err
    assert "--port" in err


def test_help_describes_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    """`upload-auth --help` names all five commands, in plain text (no reStructuredText)."""
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = capsys.readouterr().out
    for command in ("serve", "upload-api", "dev", "upload", "new-api-key"):
        assert f"\n  {command} " in text, command
    assert "``" not in text


@pytest.mark.parametrize(
    ("command", "port"), [("serve", 8000), ("upload-api", 8001), ("dev", 8000)]
)
def test_server_help_shows_defaults_and_where_configuration_comes_from(
    capsys: pytest.CaptureFixture[str], command: str, port: int
) -> None:
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    text = capsys.readouterr().out
    assert f"(default: {port})" in text
    assert "(default: 127.0.0.1)" in text
    assert "UPLOAD_AUTH_CONFIG_FILE" in text
    assert "IMAGEKIT_PRIVATE_KEY" in text


def test_upload_help_names_its_environment_and_defaults(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`upload-auth upload --help` says where the key and the caller token come from when no
    option gives them, and the defaults a run takes."""
    with pytest.raises(SystemExit):
        cli.main(["upload", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "$IMAGEKIT_PRIVATE_KEY" in text
    assert "$UPLOAD_AUTH_CALLER_TOKEN" in text
    for default in ("(default /)", "(default 8)", "(default v2)", "(default free", "(default 5)"):
        assert default in text, default
    assert "write nothing" in text


@pytest.mark.parametrize("port", ["80000", "-1", "0", "eighty"])
def test_a_port_out_of_range_is_refused_naming_it(
    port: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--port 80000 is not announced and bound to 14464, and --port -1 does not blame the
    host: argparse refuses it (exit 2), naming the value and the range."""
    with pytest.raises(SystemExit) as exited:
        cli.main(["dev", "--port", port])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "--port" in err
    assert port in err


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("0.0.0.0", "http://127.0.0.1:8123"),  # noqa: S104 - a listener's address, judged
        ("::", "http://127.0.0.1:8123"),
        ("127.0.0.1", "http://127.0.0.1:8123"),
        ("::1", "http://[::1]:8123"),
        ("upload.local", "http://upload.local:8123"),
    ],
)
def test_dev_on_every_interface_hands_out_a_url_clients_can_use(
    host: str, url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Development mode listening on 0.0.0.0 or :: gives uploadUrl on 127.0.0.1, never the
    wildcard address; other hosts are used as they are (IPv6 in brackets)."""
    monkeypatch.setenv("UPLOAD_AUTH_STORAGE_DIR", str(tmp_path / "store"))
    _, settings = cli.build("dev", host, 8123)
    assert settings.upload_api_url == url
