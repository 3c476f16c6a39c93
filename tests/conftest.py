"""Shared test set-up. Tests come in tiers, one folder each, marked by folder: ``unit`` (tiny
hand-weighted models, exact answers), ``integration`` (real models and data, the CLI and the
server), ``browser`` (the page in Chromium), ``gpu`` (CUDA only). ``pytest -m unit`` runs a tier.
Helpers live in ``tests/helpers`` and are imported as ``tests.helpers.…``."""

import atexit
import os
import shutil
import tempfile

import pytest
import torch

TIERS = ("unit", "integration", "browser", "gpu")

torch.set_num_threads(2)
# Pictures of neurons (and any other cache) go to a folder of this test run, never the user's
# ~/.cache; the CLI and servers started by the tests inherit it. It goes when the run ends.
os.environ["MASSIF_CACHE"] = tempfile.mkdtemp(prefix="massif-test-cache-")
atexit.register(shutil.rmtree, os.environ["MASSIF_CACHE"], ignore_errors=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = item.path.parts
        for tier in TIERS:
            if tier in parts:
                item.add_marker(getattr(pytest.mark, tier))
