"""docs/architecture.md's layout names every module of app/ and nothing that is not there, so
the map a newcomer reads cannot drift from the tree."""

from pathlib import Path

from tests.support.architecture import APP

DOC = APP.parent / "docs" / "architecture.md"


def listed(doc: str) -> set[str]:
    """The paths the layout block names: ``name.py`` or ``folder/`` as a line's first word,
    nested by two spaces per level; a folder's ``x.py`` named in its description counts."""
    block = doc.split("## Layout", 1)[1].split("```", 2)[1]
    paths: set[str] = set()
    stack: list[str] = []
    for line in block.splitlines():
        if not line.strip():
            continue
        depth = (len(line) - len(line.lstrip())) // 2
        word = line.split()[0]
        if not (word.endswith((".py", "/", ".js", ".html"))) or line[depth * 2 :] != line.lstrip():
            continue
        if len(line) - len(line.lstrip()) > 2 * len(stack) + 2:  # a description's next line
            continue
        del stack[depth:]
        path = "".join(stack) + word
        paths.add(path.rstrip("/"))
        if word.endswith("/"):
            stack.append(word)
    return paths


def modules(root: Path = APP) -> set[str]:
    """Every module and package of ``app/`` (packages' ``__init__.py`` named by their folder)."""
    found = set()
    for path in root.rglob("*.py"):
        relative = path.relative_to(root.parent)
        found.add(str(relative.parent if path.name == "__init__.py" else relative))
    return found


def test_every_module_is_on_the_map() -> None:
    """Each module of app/ is named in the layout, as a line or in its folder's description."""
    doc = DOC.read_text()
    named = listed(doc)
    missing = {
        m
        for m in modules()
        if m not in named and Path(m).name not in doc.split("## Layout", 1)[1].split("```", 2)[1]
    }
    assert missing == set()


def test_nothing_on_the_map_is_missing_from_the_tree() -> None:
    """Every path the layout names under app/ exists."""
    root = APP.parent
    gone = {p for p in listed(DOC.read_text()) if p.startswith("app/") and not (root / p).exists()}
    assert gone == set()


def test_the_map_reader_sees_a_missing_module() -> None:
    """The check can fail: a layout without ``core/clock.py`` misses it."""
    doc = DOC.read_text().replace("    clock.py ", "    ticker.py ")
    named = listed(doc)
    assert "app/core/clock.py" not in named
    assert "app/core/ticker.py" in named
