"""The documentation keeps up with the code: every problem type is in the API reference, and
every relative link of the README and docs/ points at a file (and heading) that exists."""

import re
from pathlib import Path

import pytest

from app.core import errors

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [
    ROOT / "README.md",
    ROOT / "CONTRIBUTING.md",
    ROOT / "SECURITY.md",
    *sorted((ROOT / "docs").glob("*.md")),
]
_LINK = re.compile(r"\]\(([^)#\s]+)?(?:#([^)\s]+))?\)")


def anchors(document: Path) -> set[str]:
    """GitHub's anchors for a Markdown file's headings."""
    found = set()
    for line in document.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            title = re.sub(r"[^\w\- ]", "", title)
            found.add(title.replace(" ", "-"))
    return found


def test_every_problem_type_is_documented() -> None:
    api = (ROOT / "docs" / "api.md").read_text()
    for problem in errors.ALL_PROBLEMS:
        assert f"`{problem.type_uri()}`" in api, problem.slug


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(document: Path) -> None:
    for target, anchor in _LINK.findall(document.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        linked = (document.parent / target).resolve() if target else document
        assert linked.exists(), f"{document.name}: {target}"
        if anchor and linked.suffix == ".md":
            assert anchor in anchors(linked), f"{document.name}: {target}#{anchor}"
