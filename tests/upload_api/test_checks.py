"""ImageKit's checks language: what parses, what does not, and what passes."""

import pytest

from app.upload_api.checks import ChecksSyntaxError, Value, evaluate, parse

UPLOAD: dict[str, Value] = {
    "file.size": 48213,
    "file.mime": "image/png",
    "request.folder": "/marketing/2026",
    "request.fileName": "cat.png",
    "request.useUniqueFileName": "false",
    "request.tags": ("summer", "dress"),
    "mediaMetadata.width": 1200,
    "request.customMetadata.price": 30,
}


@pytest.mark.parametrize(
    ("expression", "passes"),
    [
        ('"file.size" <= 48213 AND "file.mime" = "image/png"', True),
        ('"file.size" < 48213', False),
        ('"file.size" < "1mb"', True),
        ('"file.size" > "40kb"', True),
        ('"file.size" >= 48213', True),
        ('"file.size" = "48213"', True),
        ('"file.mime" : image', True),
        ('"file.mime" : "video/"', False),
        ('"file.mime" = "IMAGE/PNG"', True),
        ('"file.mime" NOT = "image/png"', False),
        ('"file.mime" IN ["image/jpeg", "image/png"]', True),
        ('"file.mime" NOT IN ["image/jpeg", "image/png"]', False),
        ('"request.folder" : "/marketing"', True),
        ('"request.folder" NOT = marketing', True),
        ('"request.tags" HAS summer', True),
        ('"request.tags" NOT HAS "winter"', True),
        ('"request.useUniqueFileName" = false', True),
        ('"mediaMetadata.width" <= 1500', True),
        ('"mediaMetadata.duration" < 10', False),
        ('"mediaMetadata.videoCodec" NOT = hevc', True),
        ('"request.customMetadata.price" > 10', True),
        (
            '"file.mime" : image OR ("mediaMetadata.videoCodec" = hevc AND '
            '"mediaMetadata.audioCodec" = aac)',
            True,
        ),
        ('("file.size" > 1 AND "file.size" < 2) OR "file.mime" = "image/png"', True),
        ('"file.size" > 1 and "file.mime" = "image/gif" or "request.fileName" = "cat.png"', True),
        ('"file.size" > 1 AND ("file.mime" = "image/gif" OR "request.fileName" = "x")', False),
    ],
)
def test_expressions_evaluate_as_documented(expression: str, passes: bool) -> None:
    """Each operator behaves as ImageKit's docs describe; AND binds tighter than OR."""
    assert evaluate(parse(expression), UPLOAD) is passes


@pytest.mark.parametrize(
    "expression",
    [
        "",
        "file.size < 1",
        '"file.size" < 1mb',
        '"file.size" : 3',
        '"request.tags" = summer',
        '"request.useUniqueFileName" : t',
        '"file.mime" HAS image',
        '"nope" = 1',
        '"file.size" <',
        '("file.size" < 3',
        '"file.size" < 3)',
        '"file.mime" = a b',
        '"file.mime" IN ["a", "b"',
        '"file.size" < 3 AND',
        '"file.mime" NOT "a"',
        '"mediaMetadata.width" < wide',
        "(" * 40 + '"file.size" < 1' + ")" * 40,
        '"file.size" > 1 AND ' * 120 + '"file.size" > 1',
    ],
)
def test_bad_expressions_are_syntax_errors(expression: str) -> None:
    """Unquoted fields, unquoted units, wrong operators, unknown fields, bad nesting: errors."""
    with pytest.raises(ChecksSyntaxError):
        parse(expression)


def test_what_credentials_sign_parses_and_pins() -> None:
    """The checks the policy writes into v2 tokens accept the file and refuse others."""
    from app.credential_service.policy import checks_for

    tree = parse(checks_for(48213, "image/png"))
    assert evaluate(tree, UPLOAD)
    assert not evaluate(tree, {**UPLOAD, "file.size": 48214})
    assert not evaluate(tree, {**UPLOAD, "file.mime": "text/html"})
