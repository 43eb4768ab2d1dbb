"""Shell completions and man page: current, renderable, complete, and answered by the CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer._click.core import Command, Context
from typer.core import TyperGroup

from agentfirm.cli.app import app
from scripts import gen_cli_docs

ROOT = Path(__file__).resolve().parents[2]
AGENTFIRM = Path(sys.executable).parent / "agentfirm"


def _command_paths(cmd: Command, ctx: Context, path: tuple[str, ...]) -> Iterator[str]:
    if not isinstance(cmd, TyperGroup):
        return
    for name in cmd.list_commands(ctx):
        sub = cmd.get_command(ctx, name)
        assert sub is not None
        yield " ".join((*path, name))
        yield from _command_paths(sub, Context(sub, info_name=name, parent=ctx), (*path, name))


def _complete(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(AGENTFIRM)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_generated_files_are_current() -> None:
    assert gen_cli_docs.main(["--check"]) == 0, "run .venv/bin/python scripts/gen_cli_docs.py"


def test_check_names_each_stale_file_and_fails(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    man = gen_cli_docs.ROOT / "man" / "agentfirm.1"
    monkeypatch.setattr(gen_cli_docs, "render_all", lambda: {man: "not what is on disk\n"})

    assert gen_cli_docs.main(["--check"]) == 1
    assert "man/agentfirm.1 is out of date" in capsys.readouterr().err


def test_every_command_appears_in_the_man_page() -> None:
    root = typer.main.get_command(app)
    page = (ROOT / "man" / "agentfirm.1").read_text(encoding="utf-8")
    commands = list(_command_paths(root, Context(root, info_name="agentfirm"), ("agentfirm",)))

    assert "agentfirm tasks watch" in commands  # the walk reaches nested commands
    assert [c for c in commands if f".SS {c}\n" not in page] == []


def test_man_page_renders_without_warnings() -> None:
    page = ROOT / "man" / "agentfirm.1"
    if shutil.which("groff"):
        argv = ["groff", "-man", "-Tutf8", "-ww", "-z", str(page)]
    elif shutil.which("man"):
        argv = ["man", "--warnings", "-l", str(page)]
    else:
        pytest.skip("neither groff nor man is installed")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)

    assert (done.returncode, done.stderr) == (0, "")


def test_bash_script_completes_a_subcommand_through_the_cli() -> None:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    script = ROOT / "completions" / "agentfirm.bash"
    body = (
        f"source '{script}'; COMP_WORDS=(agentfirm ta); COMP_CWORD=1; "
        'complete -p agentfirm >/dev/null && _agentfirm_completion agentfirm; printf "%s\\n" '
        '"${COMPREPLY[@]}"'
    )
    env = {**os.environ, "PATH": f"{AGENTFIRM.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(
        [bash, "--norc", "--noprofile", "-c", body],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.stdout.split() == ["tasks"], done.stderr


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {
                "_AGENTFIRM_COMPLETE": "complete_bash",
                "COMP_WORDS": "agentfirm ta",
                "COMP_CWORD": "1",
            },
            "tasks",
        ),
        (
            {"_AGENTFIRM_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "agentfirm per"},
            '"personas"',
        ),
        (
            {
                "_AGENTFIRM_COMPLETE": "complete_fish",
                "_TYPER_COMPLETE_FISH_ACTION": "get-args",
                "_TYPER_COMPLETE_ARGS": "agentfirm db ",
            },
            "migrate\t",
        ),
    ],
    ids=["bash", "zsh", "fish"],
)
def test_cli_answers_the_completion_protocol_of_each_script(
    env: dict[str, str], expected: str
) -> None:
    done = _complete(env)

    assert done.returncode == 0, done.stderr
    assert expected in done.stdout
