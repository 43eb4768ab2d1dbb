"""The lines under a task's header that say where its work is: the Colab launch link and the
secrets to set there, the deliverable and the task repo, and a provider that refused its key."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from ..model import TaskModel


def colab_secrets(launch: dict[str, Any]) -> list[str]:
    """The secret names the launch names; for a Colab launch that names none (an older daemon),
    every name the notebook reads from Colab's secret store."""
    named = launch.get("secrets")
    if isinstance(named, list):
        return [str(n) for n in named]
    if launch.get("runner") != "colab":
        return []
    from agentfirm.handoff.notebook import SECRET_NAMES  # only for Colab tasks: nbformat loads

    return list(SECRET_NAMES)


def where_lines(model: TaskModel) -> Text:
    """Empty when there is nothing to say yet."""
    text = Text()
    launch = model.launch
    if launch and launch.get("url") and not model.final:
        text.append(f"▶ Open the {launch.get('runner', 'runner')} run ", style="bold")
        text.append("(y copies the link):\n", style="dim")
        text.append(str(launch["url"]), style="underline")
        secrets = colab_secrets(launch)
        if secrets:
            text.append("\nSecrets to set there: ", style="dim")
            text.append(", ".join(secrets))
    if model.deliverable_path:
        text.append("\n" if text else "")
        text.append("Deliverable ", style="bold green")
        text.append(model.deliverable_path)
        text.append("  (v opens it)", style="dim")
    if model.repo_path:
        text.append("\n" if text else "")
        text.append("Task repo ", style="bold")
        text.append(model.repo_path)
    if model.key_refused:
        text.append("\n" if text else "")
        text.append(f"⚠ {model.key_refused}", style="bold red")
    return text
