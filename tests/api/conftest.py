"""The credential API's tests run twice: in development mode, and in production mode through
the production caller chain (an API key, with its audit and limits), where a deployment runs."""

from collections.abc import Callable
from typing import Any

import pytest

from app.core.settings import Settings
from tests.support.apps import production


@pytest.fixture(params=["development", "production"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_settings(make_settings: Callable[..., Settings], mode: str) -> Callable[..., Settings]:
    """The shared ``make_settings``, in this run's mode (unless a test says ``dev_mode``)."""

    def make(**overrides: Any) -> Settings:
        settings = make_settings(**overrides)
        if mode == "production" and "dev_mode" not in overrides:
            return production(settings)
        return settings

    return make
