"""Shared test set-up. Tests come in tiers, one folder each, marked by folder: ``unit`` (tiny
hand-weighted models, exact answers), ``integration`` (real models and data, the CLI and the
server), ``browser`` (the page in Chromium), ``gpu`` (CUDA only). ``pytest -m unit`` runs a tier.
Helpers live in ``tests/helpers`` and are imported as ``tests.helpers.…``; the shared fixtures
(``bundled``) come from there too.

Tests marked ``timing`` assert a wall-clock figure (a page load, a hover, ``--help``): on a busy
machine they fail with nothing wrong, so a run leaves them out unless its ``-m`` names them
(``pytest -m timing``). The acceptance tier needs the team's data beside the checkout; where it
is missing, the run says so at its end.
"""

import atexit
import os
import shutil
import tempfile

import pytest
import torch

from tests.helpers.bundled import bundled  # noqa: F401  (a fixture for every module)

TIERS = ("unit", "integration", "browser", "gpu")

# Two threads on any machine: the same work everywhere, and OpenMP teams for the tests that
# check they end with their threads (test_datasets, test_serve).
torch.set_num_threads(2)
# Pictures of neurons (and any other cache) go to a folder of this test run, never the user's
# ~/.cache; the CLI and servers started by the tests inherit it. It goes when the run ends.
os.environ["MASSIF_CACHE"] = tempfile.mkdtemp(prefix="massif-test-cache-")
atexit.register(shutil.rmtree, os.environ["MASSIF_CACHE"], ignore_errors=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = item.path.parts
        for tier in TIERS:
            if tier in parts:
                item.add_marker(getattr(pytest.mark, tier))
    if "timing" not in (config.option.markexpr or ""):
        timed = [item for item in items if item.get_closest_marker("timing")]
        if timed:
            config.hook.pytest_deselected(items=timed)
            items[:] = [item for item in items if not item.get_closest_marker("timing")]


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """The acceptance tier skipped (its data missing) is said in a line of its own, in red."""
    skipped = [r for r in terminalreporter.stats.get("skipped", [])
               if "test_acceptance.py" in r.nodeid]
    if skipped:
        from tests.integration.test_acceptance import NOT_HERE

        terminalreporter.write_sep("!", f"{len(skipped)} acceptance tests NOT RUN: {NOT_HERE}",
                                   red=True, bold=True)
