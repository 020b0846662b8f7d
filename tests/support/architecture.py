"""The house's import graph, read from the code (``ast``), and the rules docs/architecture.md
states about it, as functions a test can apply to the real tree or to a made-up one."""

import ast
import graphlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

APP: Final = Path(__file__).resolve().parents[2] / "app"

#: The two wings: neither imports the other.
WINGS: Final = ("app.credential_service", "app.upload_api")
#: The shared core below both wings, and below the process glue and the bulk uploader.
CORE: Final = "app.core"
#: What sits on top: the command, development mode, the HTTP protocol, the bulk uploader.
GLUE: Final = ("app.cli", "app.dev", "app.http_protocol", "app.bulk")
#: Web frameworks a pure module must not reach, directly or through another module.
WEB_FRAMEWORKS: Final = frozenset({"fastapi", "starlette", "uvicorn"})
#: The modules docs/architecture.md calls pure: rules and records, testable without HTTP.
PURE: Final = (
    "app.core.clock",
    "app.core.errors",
    "app.core.keys",
    "app.core.credentials",
    "app.core.signed_urls",
    "app.core.imagekit",
    "app.core.ledger.records",
    "app.core.webhooks.events",
    "app.credential_service.policy",
    "app.credential_service.callers.base",
    "app.upload_api.checks",
    "app.upload_api.detect",
    "app.upload_api.messages",
)


@dataclass(frozen=True, slots=True)
class Imports:
    """One module's imports: every one (``all``), and those run when it is imported (``eager``:
    module level, outside ``if TYPE_CHECKING``)."""

    all: frozenset[str]
    eager: frozenset[str]


def module_name(path: Path, root: Path = APP) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    if node.level == 0:
        base = node.module or ""
    else:
        package = module.split(".")
        package = package if is_package else package[:-1]
        base = ".".join(
            package[: len(package) - node.level + 1] + ([node.module] if node.module else [])
        )
    return [base] + [f"{base}.{alias.name}" for alias in node.names]


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(source: str, module: str, *, is_package: bool = False) -> Imports:
    """What a module's source imports, as absolute names (``from a import b`` names ``a`` and
    ``a.b``: ``b`` may be a module)."""
    tree = ast.parse(source)
    every: set[str] = set()
    eager: set[str] = set()

    def visit(nodes: Iterable[ast.stmt], top: bool) -> None:
        for node in nodes:
            found: list[str] = []
            if isinstance(node, ast.Import):
                found = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                found = _absolute(node, module, is_package)
            every.update(found)
            if top:
                eager.update(found)
            if isinstance(node, ast.If):
                visit(node.body, top and not _is_type_checking(node))
                visit(node.orelse, top)
            elif isinstance(node, ast.Try):
                for block in (node.body, node.orelse, node.finalbody):
                    visit(block, top)
                for handler in node.handlers:
                    visit(handler.body, top)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                visit(node.body, top and isinstance(node, ast.ClassDef))
            elif isinstance(node, ast.With | ast.AsyncWith | ast.For | ast.AsyncFor | ast.While):
                visit(node.body, top)

    visit(tree.body, True)
    return Imports(frozenset(every), frozenset(eager))


def read_tree(root: Path = APP) -> dict[str, Imports]:
    """Every module under ``root`` with its imports."""
    return {
        module_name(path, root): imports_of(
            path.read_text(), module_name(path, root), is_package=path.name == "__init__.py"
        )
        for path in sorted(root.rglob("*.py"))
    }


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _internal(graph: Mapping[str, Imports], names: Iterable[str]) -> set[str]:
    """The modules of the tree that ``names`` refer to (a name may be a module's attribute)."""
    found = set()
    for name in names:
        while name and name not in graph:
            name = name.rpartition(".")[0]
        if name:
            found.add(name)
    return found


def wing_crossings(graph: Mapping[str, Imports]) -> list[str]:
    """``importer -> imported`` for every import from one wing into the other."""
    crossings = []
    for module, imports in graph.items():
        for wing in WINGS:
            if not _within(module, wing):
                continue
            for other in WINGS:
                if other != wing:
                    crossings += [f"{module} -> {n}" for n in imports.all if _within(n, other)]
    return sorted(crossings)


def _imports_from(
    graph: Mapping[str, Imports], importers: tuple[str, ...], imported: tuple[str, ...]
) -> list[str]:
    """``importer -> imported`` for every import from a module under ``importers`` of a name
    under ``imported``."""
    return sorted(
        f"{module} -> {name}"
        for module, imports in graph.items()
        if any(_within(module, package) for package in importers)
        for name in imports.all
        if any(_within(name, package) for package in imported)
    )


def upward_from_core(graph: Mapping[str, Imports]) -> list[str]:
    """``importer -> imported`` for every import from the core into a wing or the glue."""
    return _imports_from(graph, (CORE,), (*WINGS, *GLUE))


def wings_into_glue(graph: Mapping[str, Imports]) -> list[str]:
    """``importer -> imported`` for every import from a wing into the glue above it."""
    return _imports_from(graph, WINGS, GLUE)


def bulk_outside_core(graph: Mapping[str, Imports]) -> list[str]:
    """The bulk uploader is a client: it imports the core, never a wing."""
    return _imports_from(graph, ("app.bulk",), WINGS)


def impure(graph: Mapping[str, Imports]) -> list[str]:
    """``pure module -> ... -> framework`` for every pure module that reaches a web framework,
    through any chain of the tree's modules."""
    found = []
    for pure in PURE:
        start = [m for m in graph if _within(m, pure)]
        seen: dict[str, str | None] = dict.fromkeys(start)
        queue = list(start)
        while queue:
            module = queue.pop()
            imports = graph[module].all
            hit = sorted(n for n in imports if n.split(".")[0] in WEB_FRAMEWORKS)
            if hit:
                chain = [hit[0].split(".")[0], module]
                while seen[chain[-1]] is not None:
                    chain.append(seen[chain[-1]])  # type: ignore[arg-type]
                found.append(" -> ".join(reversed(chain)))
                continue
            for name in _internal(graph, imports):
                if name not in seen:
                    seen[name] = module
                    queue.append(name)
    return sorted(set(found))


def cycles(graph: Mapping[str, Imports]) -> list[str]:
    """A cycle among the imports run at import time, if there is one (else nothing)."""
    sorter = graphlib.TopologicalSorter(
        {module: _internal(graph, imports.eager) - {module} for module, imports in graph.items()}
    )
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        return [" -> ".join(exc.args[1])]
    return []
