"""upload-auth: short-lived upload credentials for ImageKit-compatible upload APIs."""


def package_version() -> str:
    """The version, from the one place it is written: ``pyproject.toml`` (as installed)."""
    from importlib.metadata import PackageNotFoundError, version  # only when asked

    try:
        return version("upload-auth")
    except PackageNotFoundError:  # pragma: no cover - run from a tree that is not installed
        return "0+unknown"
