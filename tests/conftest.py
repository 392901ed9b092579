"""Shared test settings: what happens to tests that start a new process under mutation testing."""

from __future__ import annotations

import os
import subprocess

import pytest

_real_popen_init = subprocess.Popen.__init__


def _refuse_new_process(*args: object, **kwargs: object) -> None:
    pytest.skip("starts a new process, which mutation testing cannot follow")


def pytest_configure(config: pytest.Config) -> None:
    """Under mutmut, skip a test (or the fixture it needs) at the moment it starts a new process.

    mutmut switches mutants inside the test process; a script started in a new process runs the
    unmutated file (and, while mutmut maps tests to functions, crashes looking for its
    configuration), so such a test can neither kill a mutant nor let one live. Outside mutmut,
    nothing changes. See docs/mutation_testing.md.
    """
    if "MUTANT_UNDER_TEST" in os.environ:
        subprocess.Popen.__init__ = _refuse_new_process  # type: ignore[method-assign]


def pytest_unconfigure(config: pytest.Config) -> None:
    """Give mutmut its subprocess back when the test run ends."""
    subprocess.Popen.__init__ = _real_popen_init  # type: ignore[method-assign]
