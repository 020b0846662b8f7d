"""The MIME type Chromium (Debian's, reading the machine's shared-mime-info) reports for a
file of every allowed extension is accepted for that extension, and the credential pins the
canonical type; a type of another family stays refused, naming what would be accepted."""

from pathlib import Path

import pytest
from playwright.sync_api import Page

from app.core import errors
from app.core.imagekit.filetypes import ALLOWED
from app.core.imagekit.rules import PlanLimits
from app.credential_service.policy import FileRequest, Policy, seed_profile

pytestmark = pytest.mark.e2e

POLICY = Policy({"default": seed_profile(PlanLimits.for_plan("free"), 1800)}, "default")


def reported_types(page: Page, folder: Path) -> dict[str, str]:
    """``File.type`` for one file of each allowed extension, picked in an <input type=file>."""
    page.set_content('<input type="file" id="f" multiple>')
    paths = []
    for extension in ALLOWED:
        path = folder / f"sample.{extension}"
        path.write_bytes(b"\x00")
        paths.append(str(path))
    page.set_input_files("#f", paths)
    found: dict[str, str] = page.evaluate(
        "() => Object.fromEntries([...document.getElementById('f').files]"
        ".map((f) => [f.name.split('.').pop(), f.type]))"
    )
    return found


def test_every_type_chromium_reports_is_accepted_and_pinned(page: Page, tmp_path: Path) -> None:
    reported = reported_types(page, tmp_path)
    assert set(reported) == set(ALLOWED)
    for extension, mime in reported.items():
        file_type = ALLOWED[extension]
        assert file_type.accepts(mime), f".{extension}: Chromium says {mime!r}"
        grant = POLICY.grant_file(
            POLICY.profile(None), FileRequest(f"a.{extension}", 10, mime), caller="dev"
        )
        assert f'"file.mime" = "{file_type.mime}"' in grant.fields["checks"], extension


def test_a_type_of_another_family_is_refused_naming_what_would_do() -> None:
    with pytest.raises(errors.TypeMismatch) as refused:
        POLICY.grant_file(
            POLICY.profile(None), FileRequest("cat.png", 10, "video/mp4"), caller="dev"
        )
    detail = refused.value.detail or ""
    assert "declare image/png" in detail
    assert "video/mp4" not in detail  # what was sent is not repeated
    assert ALLOWED["png"].accepts("")
    assert ALLOWED["png"].accepts("application/octet-stream")
    assert ALLOWED["png"].accepts("IMAGE/PNG; charset=binary")
    assert not ALLOWED["png"].accepts("image/jpeg")
