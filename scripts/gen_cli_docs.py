"""Write the shell completions and the man page for the ``agentfirm`` command from the CLI itself.

python scripts/gen_cli_docs.py          # (re)write completions/agentfirm.*, man/agentfirm.1
python scripts/gen_cli_docs.py --check  # exit 1, naming the stale files, if any is out of date

Completions use typer's own scripts (the text ``--show-completion`` prints): at each Tab they
call ``_AGENTFIRM_COMPLETE=complete_<shell> agentfirm``, so they follow the CLI as it changes.
The man page walks the click command tree; it carries no date, so the output is deterministic.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

import typer
from typer._click import core as _click
from typer._completion_shared import get_completion_script
from typer.core import TyperArgument, TyperGroup

from agentfirm.cli.app import app

ROOT = Path(__file__).resolve().parents[1]
PROG = "agentfirm"
COMPLETE_VAR = "_AGENTFIRM_COMPLETE"
SHELLS = ("bash", "zsh", "fish")

EXIT_STATUS = (
    ("0", "Done."),
    ("1", "Failed."),
    ("2", "Bad input or configuration."),
    ("3", "Budget exhausted."),
    ("4", "Rejected or aborted."),
)
ENVIRONMENT = (
    ("AGENTFIRM_HOME", "Put config, data, state and runtime files under this one directory."),
    ("AGENTFIRM_OFFLINE", "1: the offline provider serves every tier (same as --offline)."),
    (
        "AGENTFIRM_NO_DAEMON",
        "1: commands work in their own process, never through the daemon (same as --no-daemon).",
    ),
    ("AGENTFIRM_BUDGET_USD", "Default budget ceiling in US dollars (5.00)."),
    ("AGENTFIRM_DATABASE_URL", "A postgresql:// URL instead of the embedded SQLite store."),
    ("AGENTFIRM_REDIS_URL", "Redis Streams instead of the embedded event log."),
    (
        "ANTHROPIC_API_KEY, OPENAI_API_KEY, GEMINI_API_KEY",
        "Provider keys, used when the OS keyring holds none (agentfirm secrets set NAME).",
    ),
    ("GITHUB_TOKEN", "Token for task repos on GitHub (AGENTFIRM_REPO_BACKEND=github)."),
    ("NO_COLOR", "Any value turns colour off."),
    ("XDG_CONFIG_HOME, XDG_DATA_HOME, XDG_STATE_HOME, XDG_RUNTIME_DIR", "See FILES."),
)
FILES = (
    ("~/.config/agentfirm/config.toml", "Settings, below environment variables and .env."),
    ("~/.local/share/agentfirm/", "Data: the SQLite store, the event log, task repos."),
    ("~/.local/state/agentfirm/agentfirm.log", "Logs as JSON lines, secrets redacted."),
    ("~/.local/state/agentfirm/daemon.log", "The daemon's log (agentfirm daemon logs)."),
    ("$XDG_RUNTIME_DIR/agentfirm/", "The daemon's socket and pidfile."),
)

# zsh loads a file found in $fpath as the body of the completion function; sourced, it must
# register itself. typer's script only does the latter, so the last line learns both (as click's).
_ZSH_REGISTER = f"compdef _{PROG}_completion {PROG}"
_ZSH_EITHER = (
    "if [[ $zsh_eval_context[-1] == loadautofunc ]]; then\n"
    f'  _{PROG}_completion "$@"\n'
    "else\n"
    f"  {_ZSH_REGISTER}\n"
    "fi"
)


def render_completion(shell: str) -> str:
    """The completion script for ``shell`` (bash, zsh or fish), ending in a newline."""
    script = get_completion_script(prog_name=PROG, complete_var=COMPLETE_VAR, shell=shell)
    if shell == "zsh":
        script = script.replace(_ZSH_REGISTER, _ZSH_EITHER)
    return script + "\n"


# ---------------------------------------------------------------------------- man page
_ROFF_CHARS = {"—": r"\(em", "–": r"\(en", "…": "...", "‘": "'", "’": "'", "“": '"', "”": '"'}


def _roff(text: str) -> str:
    """Escape text for roff: backslashes, hyphens, line-leading control characters, non-ASCII."""
    out = text.replace("\\", r"\e").replace("-", r"\-")
    out = "".join(_ROFF_CHARS.get(ch, ch if ord(ch) < 128 else f"\\[u{ord(ch):04X}]") for ch in out)
    lines = [r"\&" + ln if ln.startswith((".", "'")) else ln for ln in out.splitlines()]
    return "\n".join(lines)


def _commands(
    cmd: _click.Command, ctx: _click.Context, path: tuple[str, ...]
) -> Iterator[tuple[tuple[str, ...], _click.Command, _click.Context]]:
    """Every visible command under ``cmd`` in help order, depth first, with its name path."""
    if not isinstance(cmd, TyperGroup):
        return
    for name in cmd.list_commands(ctx):
        sub = cmd.get_command(ctx, name)
        if sub is None or sub.hidden:
            continue
        sub_ctx = _click.Context(sub, info_name=name, parent=ctx)
        yield (*path, name), sub, sub_ctx
        yield from _commands(sub, sub_ctx, (*path, name))


def _tagged(items: list[tuple[str, str]]) -> list[str]:
    lines: list[str] = []
    for tag, text in items:
        lines += [".TP", rf"\fB{_roff(tag)}\fR", _roff(text) if text else r"\&"]
    return lines


def _params(cmd: _click.Command, ctx: _click.Context) -> list[str]:
    arguments: list[tuple[str, str]] = []
    options: list[tuple[str, str]] = []
    for param in cmd.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is None:
            continue
        (arguments if isinstance(param, TyperArgument) else options).append(record)
    lines: list[str] = []
    if arguments:
        lines += [".PP", "Arguments:", ".RS", *_tagged(arguments), ".RE"]
    if options:
        lines += [".PP", "Options:", ".RS", *_tagged(options), ".RE"]
    return lines


def _help(cmd: _click.Command) -> str:
    # typer keeps the docstring's paragraphs; the man page shows each as one filled paragraph
    text = (cmd.help or cmd.short_help or "").strip()
    return "\n.PP\n".join(_roff(" ".join(p.split())) for p in text.split("\n\n") if p.strip())


def render_man() -> str:
    """The man page, section 1, in roff (man macros), ending in a newline."""
    root = typer.main.get_command(app)
    ctx = _click.Context(root, info_name=PROG)
    lines = [
        rf'.TH {PROG.upper()} 1 "" "{PROG}" "User Commands"',
        ".SH NAME",
        rf"{PROG} \- {_roff((root.help or '').strip().splitlines()[0])}",
        ".SH SYNOPSIS",
        rf"\fB{PROG}\fR [\fIOPTIONS\fR] \fICOMMAND\fR [\fIARGS\fR]...",
        ".SH DESCRIPTION",
        _help(root),
        *_params(root, ctx),
        ".SH COMMANDS",
    ]
    for path, cmd, sub_ctx in _commands(root, ctx, (PROG,)):
        usage = " ".join(cmd.collect_usage_pieces(sub_ctx))
        lines += [
            f".SS {' '.join(path)}",
            rf"\fB{' '.join(path)}\fR {_roff(usage)}",
            ".PP",
            _help(cmd),
            *_params(cmd, sub_ctx),
        ]
    lines += [".SH EXIT STATUS", *_tagged(list(EXIT_STATUS))]
    lines += [".SH ENVIRONMENT", *_tagged(list(ENVIRONMENT))]
    lines += [".SH FILES", *_tagged(list(FILES))]
    lines += [".SH SEE ALSO", r"README.md in the agentfirm source tree."]
    return "\n".join(ln for ln in lines if ln) + "\n"


# ---------------------------------------------------------------------------- entry point
def render_all() -> dict[Path, str]:
    """Every generated file (absolute path) and the text it should hold."""
    files = {ROOT / "completions" / f"{PROG}.{shell}": render_completion(shell) for shell in SHELLS}
    files[ROOT / "man" / f"{PROG}.1"] = render_man()
    return files


def stale_files(files: dict[Path, str]) -> list[Path]:
    """The files in ``files`` whose content on disk is missing or different."""
    return [
        path
        for path, text in files.items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]


def main(argv: list[str] | None = None) -> int:
    """Write the files, or with ``--check`` report the stale ones on stderr and return 1."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check the files are current")
    args = parser.parse_args(argv)
    files = render_all()
    stale = stale_files(files)
    if args.check:
        for path in stale:
            rel = path.relative_to(ROOT)
            sys.stderr.write(
                f"{rel} is out of date: run .venv/bin/python scripts/gen_cli_docs.py\n"
            )
        return 1 if stale else 0
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[path], encoding="utf-8")
        sys.stderr.write(f"wrote {path.relative_to(ROOT)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
