"""Reading a secret from a mounted file (Docker and Kubernetes secrets)."""

from pathlib import Path


def read_secret_file(path: Path, setting: str) -> str:
    """A secret from a file, without the trailing newline editors and ``echo`` add."""
    try:
        value = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{setting}: cannot read {path} ({type(exc).__name__})") from None
    if not value:
        raise ValueError(f"{setting}: {path} is empty")
    return value
