"""The configuration reference is generated from the settings models and checked in: it may
not drift from the code."""

from pathlib import Path

from app.core.settings import (
    ApiKeyConfig,
    ForwardAuthConfig,
    IdpConfig,
    KeyPairConfig,
    ProfileConfig,
    Settings,
)
from app.core.settings_reference import render

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_the_checked_in_reference_is_what_the_code_generates() -> None:
    """Regenerate with `python -m app.core.settings_reference > docs/configuration.md`."""
    assert REFERENCE.read_text() == render(), (
        "run: python -m app.core.settings_reference > docs/configuration.md"
    )


def test_every_setting_is_documented_with_its_meaning() -> None:
    """Every field of every settings model has a description, and is in the reference."""
    text = render()
    for model in (
        Settings,
        KeyPairConfig,
        ProfileConfig,
        ApiKeyConfig,
        IdpConfig,
        ForwardAuthConfig,
    ):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"
            assert name in text, name
    assert "`UPLOAD_AUTH_RATE_LIMIT_URLS`" in text
    assert "`IMAGEKIT_PRIVATE_KEY`" in text
