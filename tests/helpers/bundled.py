"""Fixtures of the bundled model, shared by every test module (``tests/conftest.py`` imports
them): ``bundled``, the model as ``massif.load_model("bundled")`` gives it, loaded once per test
run. Stages put their hooks on it and take them off again (``massif.hooks``), so tests share it
as they share the package."""

from __future__ import annotations

import pytest

import massif


@pytest.fixture(scope="session")
def bundled() -> massif.Model:
    return massif.load_model("bundled")
