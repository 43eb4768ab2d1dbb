"""The daemon's notebook runner hands its kernel the daemon's environment (issue 21 item 4): a
provider key that comes from an environment variable reaches the kernel, which reads it through
its own SecretStore; nothing writes it down."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from agentfirm.daemon.service import TaskHost
from keyring.backends import fail

from agentfirm.runs.notebook import NotebookRunner
from agentfirm.secrets import Redactor, SecretStore
from agentfirm.settings import load_settings

pytestmark = pytest.mark.integration

KEY = "canary-anthropic-env-4b8f2a"


async def test_the_daemons_notebook_kernel_gets_the_keys_and_path_of_its_environment(
    tmp_path: Path,
) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "AGENTFIRM_HOME": str(tmp_path / "home"),
        "ANTHROPIC_API_KEY": KEY,
        "AGENTFIRM_TIERS__REASONING": '["anthropic:claude-sonnet-4-6"]',
        "AGENTFIRM_TIERS__EXECUTION": '["anthropic:claude-sonnet-4-6"]',
        "AGENTFIRM_TIERS__UTILITY": '["anthropic:claude-sonnet-4-6"]',
    }
    settings = load_settings(env, cwd=tmp_path)
    redactor = Redactor()
    secrets = SecretStore(redactor, env=env, backend=fail.Keyring())
    host = await TaskHost.open(settings, redactor=redactor, secrets=secrets, env=env)
    try:
        runner = host.app.master(host.decider, runner="notebook").runner
        assert isinstance(runner, NotebookRunner)
        kernel = runner.kernel_env()
    finally:
        await host.app.close()

    assert kernel["ANTHROPIC_API_KEY"] == KEY
    assert kernel["PATH"] == env["PATH"]
    assert kernel["AGENTFIRM_HOME"] == env["AGENTFIRM_HOME"]
