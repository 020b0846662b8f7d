"""The rules docs/architecture.md states about imports, enforced on the real tree, and each
rule shown to catch what it forbids on a made-up tree."""

import pytest

from tests.support.architecture import (
    Imports,
    bulk_outside_core,
    cycles,
    imports_of,
    impure,
    read_tree,
    upward_from_core,
    wing_crossings,
    wings_into_glue,
)

TREE = read_tree()


def graph(**modules: str) -> dict[str, Imports]:
    """A made-up tree: module name (``__`` for ``.``) -> its source."""
    return {
        name.replace("__", "."): imports_of(src, name.replace("__", "."))
        for name, src in modules.items()
    }


def test_the_tree_is_read() -> None:
    """Both wings, the core and the glue are found (a rule over no modules proves nothing)."""
    for module in (
        "app.credential_service.app",
        "app.upload_api.app",
        "app.core.settings",
        "app.cli",
    ):
        assert module in TREE


def test_neither_wing_imports_the_other() -> None:
    """The credential service and the upload API meet only through the core."""
    assert wing_crossings(TREE) == []


def test_the_core_imports_no_wing_and_no_glue() -> None:
    """The shared core sits below both wings, the command and development mode."""
    assert upward_from_core(TREE) == []


def test_the_wings_import_no_glue() -> None:
    """The command, development mode and the HTTP protocol sit above both wings."""
    assert wings_into_glue(TREE) == []


def test_a_wing_importing_the_glue_is_caught() -> None:
    """A wing module importing the command or the bulk uploader is named."""
    made_up = graph(app__credential_service__x="from app import cli\nfrom app.bulk import plan\n")
    assert wings_into_glue(made_up) == [
        "app.credential_service.x -> app.bulk",
        "app.credential_service.x -> app.bulk.plan",
        "app.credential_service.x -> app.cli",
    ]


def test_the_bulk_uploader_is_a_client_of_the_core() -> None:
    """The bulk uploader uses ImageKit's rules, never a wing's code."""
    assert bulk_outside_core(TREE) == []


def test_pure_modules_reach_no_web_framework() -> None:
    """Rules and records import no FastAPI, Starlette or uvicorn, directly or through another
    module, so they test without HTTP."""
    assert impure(TREE) == []


def test_no_import_cycle() -> None:
    """Imports run one way, down the layers."""
    assert cycles(TREE) == []


def test_a_wing_crossing_is_caught() -> None:
    """An upload-API module importing the credential service's policy, even lazily or only for
    type checking, is named."""
    made_up = graph(
        app__upload_api__x="def f():\n    from app.credential_service.policy import Policy\n",
        app__upload_api__y=(
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from app.credential_service import service\n"
        ),
    )
    assert wing_crossings(made_up) == [
        "app.upload_api.x -> app.credential_service.policy",
        "app.upload_api.x -> app.credential_service.policy.Policy",
        "app.upload_api.y -> app.credential_service",
        "app.upload_api.y -> app.credential_service.service",
    ]


def test_an_upward_import_from_the_core_is_caught() -> None:
    """A core module importing a wing or the command is named."""
    made_up = graph(
        app__core__a="from app.upload_api import messages\n", app__core__b="import app.cli\n"
    )
    assert upward_from_core(made_up) == [
        "app.core.a -> app.upload_api",
        "app.core.a -> app.upload_api.messages",
        "app.core.b -> app.cli",
    ]


def test_a_framework_reached_through_another_module_is_caught() -> None:
    """A pure module that imports a module that imports Starlette is impure, with the chain."""
    made_up = graph(
        app__core__clock="from app.core import helper\n",
        app__core__helper="from starlette.requests import Request\n",
    )
    assert impure(made_up) == ["app.core.clock -> app.core.helper -> starlette"]


@pytest.mark.parametrize("relative", ["from . import b\n", "from .b import thing\n"])
def test_a_cycle_is_caught_relative_imports_included(relative: str) -> None:
    """Two modules importing each other at import time form a cycle."""
    made_up = graph(app__core__a=relative, app__core__b="import app.core.a\n")
    assert cycles(made_up) != []
