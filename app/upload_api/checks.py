"""ImageKit's ``checks`` expression language: a parser and an evaluator. Pure.

Grammar (operators and keywords case-insensitive)::

    expr       := and_expr ("OR" and_expr)*
    and_expr   := primary ("AND" primary)*
    primary    := "(" expr ")" | comparison
    comparison := FIELD operator value
    operator   := "=" | "NOT" "=" | ":" | "IN" | "NOT" "IN" | "HAS" | "NOT" "HAS"
                | "<" | "<=" | ">" | ">="
    value      := STRING | WORD | "[" value ("," value)* "]"

``FIELD`` is a double-quoted field name such as ``"file.size"`` (unquoted names are a syntax
error, as on ImageKit). Sizes are bytes or quoted strings with a unit: ``"1mb"`` (binary units,
as everywhere in upload-auth); a bare ``1mb`` is a syntax error, as ImageKit's docs warn. Each
field allows only the operators ImageKit lists for it; anything else is a syntax error. A field
with no value (``mediaMetadata.duration`` of an image) makes its comparison false, and ``NOT``
forms true.
"""

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal, cast

from app.core.imagekit.rules import parse_size
from app.upload_api.messages import BOOLEAN_FIELDS

MAX_LENGTH: Final = 4096
MAX_DEPTH: Final = 32
MAX_COMPARISONS: Final = 100

Value = str | int | tuple[str, ...] | None

_STRING_OPS: Final = frozenset({"=", "NOT =", ":", "IN", "NOT IN"})
_BOOL_OPS: Final = frozenset({"=", "NOT ="})
_TAG_OPS: Final = frozenset({"HAS", "NOT HAS"})
_NUMBER_OPS: Final = frozenset({"=", "<", "<=", ">", ">="})
_ALL_OPS: Final = _STRING_OPS | _TAG_OPS | _NUMBER_OPS

_FIELDS: Final[Mapping[str, tuple[str, frozenset[str]]]] = {
    **{
        f"request.{n}": ("string", _STRING_OPS)
        for n in ("fileName", "folder", "customCoordinates", "webhookUrl")
    },
    **{f"request.{n}": ("bool", _BOOL_OPS) for n in BOOLEAN_FIELDS},
    "request.tags": ("tags", _TAG_OPS),
    "file.size": ("size", _NUMBER_OPS),
    "file.mime": ("mime", _STRING_OPS),
    **{
        f"mediaMetadata.{n}": ("number", _NUMBER_OPS)
        for n in ("width", "height", "duration", "bitRate")
    },
    **{f"mediaMetadata.{n}": ("string", _STRING_OPS) for n in ("videoCodec", "audioCodec")},
}
_CUSTOM_PREFIX: Final = "request.customMetadata."

_TOKEN_RE: Final = re.compile(
    r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<op><=|>=|[<>=:()\[\],])|(?P<word>[^\s"<>=:()\[\],]+))'
)


class ChecksSyntaxError(ValueError):
    """The expression does not parse, or uses a field or operator ImageKit does not allow."""


@dataclass(frozen=True, slots=True)
class Comparison:
    field: str
    kind: str
    op: str
    value: str | int | tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class BoolOp:
    op: Literal["AND", "OR"]
    items: tuple["Node", ...]


Node = Comparison | BoolOp


@dataclass(frozen=True, slots=True)
class _Token:
    kind: Literal["string", "op", "word"]
    text: str


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if not match or match.end() == pos:
            raise ChecksSyntaxError("unexpected character")
        kind = cast(Literal["string", "op", "word"], match.lastgroup)  # the regex's only groups
        raw = match.group(kind)
        if kind == "string":
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        tokens.append(_Token(kind, raw))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, tokens: Sequence[_Token]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.comparisons = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.peek()
        if token is None:
            raise ChecksSyntaxError("unexpected end of expression")
        self.pos += 1
        return token

    def keyword(self, *words: str) -> str | None:
        token = self.peek()
        if token is not None and token.kind == "word" and token.text.upper() in words:
            self.pos += 1
            return token.text.upper()
        return None

    def expr(self, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise ChecksSyntaxError("too deeply nested")
        items = [self.and_expr(depth)]
        while self.keyword("OR"):
            items.append(self.and_expr(depth))
        return items[0] if len(items) == 1 else BoolOp("OR", tuple(items))

    def and_expr(self, depth: int) -> Node:
        items = [self.primary(depth)]
        while self.keyword("AND"):
            items.append(self.primary(depth))
        return items[0] if len(items) == 1 else BoolOp("AND", tuple(items))

    def primary(self, depth: int) -> Node:
        token = self.peek()
        if token is not None and token.kind == "op" and token.text == "(":
            self.take()
            node = self.expr(depth + 1)
            closing = self.take()
            if closing.kind != "op" or closing.text != ")":
                raise ChecksSyntaxError("expected ')'")
            return node
        return self.comparison()

    def operator(self) -> str:
        if self.keyword("NOT"):
            token = self.take()
            rest = token.text.upper()
            if (token.kind, rest) in (("op", "="), ("word", "IN"), ("word", "HAS")):
                return f"NOT {rest}"
            raise ChecksSyntaxError("NOT must be followed by =, IN or HAS")
        word = self.keyword("IN", "HAS")
        if word:
            return word
        token = self.take()
        if token.kind == "op" and token.text in ("=", ":", "<", "<=", ">", ">="):
            return token.text
        raise ChecksSyntaxError("expected an operator")

    def value(self, allow_list: bool) -> str | tuple[str, ...]:
        token = self.take()
        if token.kind == "op" and token.text == "[" and allow_list:
            items = [self.value(False)]
            while True:
                sep = self.take()
                if sep.kind == "op" and sep.text == "]":
                    return tuple(str(i) for i in items)
                if sep.kind != "op" or sep.text != ",":
                    raise ChecksSyntaxError("expected ',' or ']'")
                items.append(self.value(False))
        if token.kind == "string":
            return token.text
        if token.kind == "word" and token.text.upper() not in ("AND", "OR", "NOT", "IN", "HAS"):
            return token.text
        raise ChecksSyntaxError("expected a value")

    def comparison(self) -> Comparison:
        token = self.take()
        if token.kind != "string":
            raise ChecksSyntaxError("field names must be double-quoted")
        field = token.text
        if field in _FIELDS:
            kind, ops = _FIELDS[field]
        elif field.startswith(_CUSTOM_PREFIX) and len(field) > len(_CUSTOM_PREFIX):
            kind, ops = "custom", _ALL_OPS
        else:
            raise ChecksSyntaxError("unknown field")
        op = self.operator()
        if op not in ops:
            raise ChecksSyntaxError("operator not allowed for this field")
        upcoming = self.peek()
        quoted = upcoming is not None and upcoming.kind == "string"
        raw = self.value(allow_list=op in ("IN", "NOT IN"))
        self.comparisons += 1
        if self.comparisons > MAX_COMPARISONS:
            raise ChecksSyntaxError("too many comparisons")
        return Comparison(field, kind, op, _coerce(kind, raw, quoted))


def _coerce(
    kind: str, raw: str | tuple[str, ...], quoted: bool
) -> str | int | tuple[str | int, ...]:
    if isinstance(raw, tuple):
        return raw
    if kind == "size":
        if not quoted and not (raw.isascii() and raw.isdigit()):
            raise ChecksSyntaxError('sizes with units must be quoted, e.g. "1mb"')
        try:
            return parse_size(raw)
        except ValueError:
            raise ChecksSyntaxError("not a size") from None
    if kind == "number":
        try:
            return int(raw)
        except ValueError:
            raise ChecksSyntaxError("not a number") from None
    return raw


def parse(text: str) -> Node:
    """Parse a ``checks`` expression, or raise ChecksSyntaxError."""
    if not text.strip() or len(text) > MAX_LENGTH:
        raise ChecksSyntaxError("empty or too long")
    parser = _Parser(_tokenize(text))
    node = parser.expr(0)
    if parser.peek() is not None:
        raise ChecksSyntaxError("unexpected text after the expression")
    return node


def _number(value: Value) -> int | None:
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return None


def _compare(node: Comparison, actual: Value) -> bool:
    op, expected = node.op, node.value
    negated = op.startswith("NOT ")
    base = op.removeprefix("NOT ")
    if actual is None:
        return negated
    if base == "HAS":
        tags = actual if isinstance(actual, tuple) else tuple(str(actual).split(","))
        found = str(expected) in tags
        return found != negated
    if base in ("<", "<=", ">", ">=") or (node.kind in ("size", "number") and base == "="):
        left = _number(actual)
        right = None if isinstance(expected, tuple) else _number(expected)
        if left is None or right is None:
            return False
        return {
            "<": left < right,
            "<=": left <= right,
            ">": left > right,
            ">=": left >= right,
            "=": left == right,
        }[base]
    text = str(actual)
    if node.kind == "mime":
        text = text.lower()
    if node.kind == "bool":
        text = text.lower()

    def norm(v: str | int) -> str:
        v = str(v)
        return v.lower() if node.kind in ("mime", "bool") else v

    if base == "=":
        result = text == norm(expected) if not isinstance(expected, tuple) else False
    elif base == ":":
        result = not isinstance(expected, tuple) and text.startswith(norm(expected))
    else:  # IN
        options = expected if isinstance(expected, tuple) else (expected,)
        result = text in {norm(o) for o in options}
    return result != negated


def evaluate(node: Node, values: Mapping[str, Value]) -> bool:
    """Whether the upload described by ``values`` (field name -> value) passes."""
    if isinstance(node, BoolOp):
        results = (evaluate(item, values) for item in node.items)
        return all(results) if node.op == "AND" else any(results)
    return _compare(node, values.get(node.field))
