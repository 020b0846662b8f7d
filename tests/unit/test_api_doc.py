"""docs/api.md's table of allowed file types is the upload API's own list, so the refusal that
points to it points to the truth."""

import re
from pathlib import Path

import pytest

from app.core.imagekit.filetypes import ALLOWED
from app.core.imagekit.rules import UnknownType, check_file_name

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def documented() -> dict[str, set[str]]:
    """The table: kind -> extensions."""
    section = DOC.read_text().split("### Allowed file types", 1)[1].split("\n## ", 1)[0]
    table = {}
    for kind, cell in re.findall(r"^\| (\w+) \| (`.*`) \|$", section, flags=re.MULTILINE):
        table[kind] = set(re.findall(r"`([^`]+)`", cell))
    return table


def test_the_table_lists_every_allowed_type_under_its_kind() -> None:
    """Every extension the upload API allows is in the table, under its kind, and nothing
    else is."""
    expected: dict[str, set[str]] = {}
    for extension, file_type in ALLOWED.items():
        expected.setdefault(file_type.kind.value, set()).add(extension)
    assert documented() == expected
    assert f"The {len(ALLOWED)} extensions" in DOC.read_text()


def test_a_refused_type_points_to_the_table() -> None:
    """The refusal of an unknown extension names the section that lists the allowed ones."""
    with pytest.raises(UnknownType) as refused:
        check_file_name("tool.exe")
    assert "docs/api.md (Allowed file types)" in str(refused.value)
