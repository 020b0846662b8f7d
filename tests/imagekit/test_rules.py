"""ImageKit's rules on their own: plain exceptions, no HTTP, no policy."""

import pytest

from app.core import errors
from app.core.imagekit import rules
from app.core.imagekit.rules import MIB, format_size, parse_size
from app.credential_service.policy import as_problem


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("10", 10),
        (10, 10),
        ("1kb", 1024),
        ("25mb", 25 * MIB),
        ("2 GB", 2 * 1024 * MIB),
        ("5m", 5 * MIB),
    ],
)
def test_parse_size(text: str | int, size: int) -> None:
    """Sizes accept bytes or kb/mb/gb (binary units)."""
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "mb", "-1", "1.5mb", "10 tb", -5])
def test_parse_size_refuses_nonsense(text: str | int) -> None:
    """Anything else is a ValueError."""
    with pytest.raises(ValueError, match="size"):
        parse_size(text)


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 bytes"),
        (1023, "1023 bytes"),
        (1024, "1 KiB"),
        (1536, "1.5 KiB"),
        (25 * MIB, "25 MiB"),
        (int(31.2 * MIB), "31.2 MiB"),
        (3 * 1024 * MIB, "3 GiB"),
    ],
)
def test_sizes_for_people(size: int, text: str) -> None:
    """Refusals name sizes in binary units, to one decimal where it is not whole."""
    assert format_size(size) == text


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("", rules.BadFileName),
        ("../cat.png", rules.BadFileName),
        ("gnp\u202e.png", rules.BadFileName),
        ("noextension", rules.BadFileName),
        ("cat.exe", rules.UnknownType),
        ("cat.\u00e9xe", rules.UnknownType),
    ],
)
def test_names_break_rules_with_plain_exceptions(name: str, error: type[rules.RuleError]) -> None:
    """A bad name is a ValueError subclass that says why without repeating odd input; the
    credential service turns each into its own problem."""
    with pytest.raises(error) as refused:
        rules.check_file_name(name)
    assert isinstance(refused.value, ValueError)
    assert not isinstance(refused.value, errors.Problem)
    assert "\u202e" not in str(refused.value)
    assert "\u00e9" not in str(refused.value)
    problem = as_problem(refused.value)
    assert problem.detail == str(refused.value)
    assert (
        problem.slug
        == {
            rules.BadFileName: "invalid-file-name",
            rules.UnknownType: "type-not-allowed",
        }[error]
    )


@pytest.mark.parametrize(
    ("folder", "canonical"),
    [
        ("", "/"),
        ("/", "/"),
        ("a//b/", "/a/b"),
        ("/" + "/".join("d" * 50), "/" + "/".join("d" * 50)),
    ],
)
def test_folders_in_canonical_form(folder: str, canonical: str) -> None:
    assert rules.normalise_folder(folder) == canonical


@pytest.mark.parametrize(
    "folder",
    ["a b", "../x", "/" + "/".join("d" * 51), "x" * 256, "/a/" + "é"],
)
def test_folders_outside_imagekit_rules(folder: str) -> None:
    with pytest.raises(rules.BadFolder):
        rules.normalise_folder(folder)


def test_tags_and_within() -> None:
    assert rules.check_tags("a,b") == "a,b"
    for bad in ("50%", "x" * 501):
        with pytest.raises(rules.BadTags):
            rules.check_tags(bad)
    assert rules.is_within("/a/b", "/a")
    assert rules.is_within("/x", "/")
    assert not rules.is_within("/ab", "/a")
