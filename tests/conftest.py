"""The throwaway servers' fixtures (``pg_server``, ``pg_url``, ``pg_empty_url``, ``redis_server``,
``redis_url``, ``unused_port``) and ``quick_checks`` for every test directory. Registered here
once rather than imported into each module: an imported session fixture is a new fixture per
module, so each module started its own server; and a plugin named here is set up for assert
rewriting before anything imports it.

Also what keeps the suite's wall time down (CI has ten minutes on two cores):
- the sources are compiled once before the run: the suite starts a thousand Python processes (the
  CLI, daemons, kernels), and under ``PYTHONDONTWRITEBYTECODE`` (or on a fresh clone, all at once)
  each compiled every module it imported, a fifth of a CLI run's CPU;
- files marked ``heavy`` (one holds a worker for a minute or more) are handed out first: xdist
  gives a worker one file at a time, so a long file handed out last is a run's whole tail (the
  Makefile turns off xdist's reordering by test count, which put these few-test files last).

And SIGINT is made deliverable: a suite started as a background job without job control (a CI
script's ``make test &``, ``nohup``) inherits SIGINT as ignored, every child inherits that, and a
test that presses Ctrl-C on a child (the Ctrl-C tests of ``run``) then sees it finish instead.
"""

from __future__ import annotations

import compileall
import signal
from pathlib import Path

import pytest

pytest_plugins = (
    "tests.integration.pg_server",
    "tests.integration.redis_server",
    "tests.sqlite_checks",
)

ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    # A handled signal is reset to its default in an exec'd child; an ignored one stays ignored.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if hasattr(config, "workerinput"):
        return  # an xdist worker: the controller compiled them
    for package in ("agentfirm", "daemon", "tui", "tests"):
        compileall.compile_dir(ROOT / package, quiet=1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.get_closest_marker("heavy") is None)  # stable
