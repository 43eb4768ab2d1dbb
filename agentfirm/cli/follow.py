"""Following a daemon-hosted task from the terminal: its events as progress lines with a cost
ticker, its questions answered as they come (``cli_answers``), until the daemon's driver of the
task stops and publishes ``task.result``.

``task.result`` (published by ``daemon/service.py``) carries either ``{"result": …}`` — exactly
what ``run --json`` prints in-process — or ``{"error", "exit_code"}`` when the daemon refused to
drive the task; ``result_or_raise`` turns the latter into the same error an in-process run raises.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator, Iterator
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

from agentfirm.cli.output import plain
from agentfirm.domain.decision import Decision

if TYPE_CHECKING:
    from rich.console import Console

    from agentfirm.cli.answers import Answerer
    from agentfirm.domain.models import Event

RESULT_EVENT = "task.result"
PATIENCE_S = 5.0
"""How long a follower waits for a daemon that stopped (a restart) before it gives up."""


class Follower:
    """Reads a task's event stream from the daemon. ``out`` None: silent (``--json``) but for
    notices (a refused key), on stderr; ``answers`` None: questions are only shown (another
    terminal answers them)."""

    def __init__(self, client: Any, out: Console | None, answers: Answerer | None) -> None:
        from agentfirm.cli.output import NoticePrinter, ProgressPrinter, console

        self.client = client
        self.out = out
        self.answers = answers
        self.printer = ProgressPrinter(out) if out is not None else None
        self.notices = NoticePrinter(console(stderr=True)) if out is None else None
        self.spent = 0.0
        self.status = "…"
        self.last_seq = 0
        self.asking = False
        """A question is on the terminal: left there (Ctrl-C), the task waits for its answer."""

    def _ticker(self) -> str:
        return f"{self.status} · spent ${self.spent:.4f}"

    def follow(
        self,
        task_id: str,
        after_seq: int = 0,
        *,
        stop_at: Callable[[dict[str, Any]], bool] = lambda payload: True,
    ) -> dict[str, Any] | None:
        """Follow until a ``task.result`` that ``stop_at`` accepts (returned), or until the stream
        ends (None: the task is final, or no daemon answered for ``PATIENCE_S``). A daemon that
        restarts meanwhile is followed on from the last event seen."""
        from agentfirm.api.follow import follow_sync
        from agentfirm.domain.models import Event

        self.last_seq = after_seq
        if self.answers is not None:
            # asked before ``after_seq`` (or before a restart) and still open: answer them first
            for approval in self.client.approvals(task_id, pending=True):
                self._answer(task_id, str(approval["id"]))
        spinner = self.out.status(self._ticker()) if self.out is not None else nullcontext()
        events = follow_sync(self.client.socket, task_id, after_seq=after_seq, patience=PATIENCE_S)
        with spinner as bar, contextlib.closing(_until_lost(events)) as stream:
            for raw in stream:
                event = Event.model_validate(raw)
                self.last_seq = event.seq
                if event.type == RESULT_EVENT:
                    if stop_at(event.payload):
                        return event.payload
                    continue
                self._show(event)
                if bar is not None:
                    bar.update(self._ticker())
                if event.type == "approval.requested" and self.answers is not None:
                    if bar is not None:
                        bar.stop()
                    self._answer(task_id, str(event.payload.get("approval_id")))
                    if bar is not None:
                        bar.start()
        return None

    def _show(self, event: Event) -> None:
        p = event.payload
        if event.type == "task.transition":
            self.status = str(p.get("to"))
        elif event.type == "cost.updated":
            self.spent = float(p.get("spent_usd", self.spent))
        if self.notices is not None:
            self.notices(event)
        if self.out is None or self.printer is None:
            return
        self.printer(event)
        if event.type == "approval.requested":
            self.out.print(
                f"  [magenta]?[/] {plain(p.get('question', ''))}  ({p.get('approval_id')})"
            )
        elif event.type == "approval.decided":
            self.out.print(
                f"  [magenta]✓[/] {p.get('kind')} {p.get('decision')} by {p.get('actor')}"
            )
        elif event.type == "task.completed":
            self.out.print(f"  [green]■[/] deliverable: {plain(p.get('deliverable'))}")

    def _answer(self, task_id: str, approval_id: str) -> None:
        """Answer the question if it is still pending (another terminal may have answered it);
        a refused answer is shown and asked again."""
        from agentfirm.errors import BadInput

        assert self.answers is not None
        first = True
        while True:
            pending = {a["id"]: a for a in self.client.approvals(task_id, pending=True)}
            approval = pending.get(approval_id)
            if approval is None:
                if first:
                    self._decided_already(task_id, approval_id)
                return
            first = False
            self.asking = True
            choice = self.answers.answer(approval)  # not reset by a Ctrl-C: still unanswered
            self.asking = False
            if choice is None:
                if self.out is not None:
                    self.out.print("  left pending: answer it from another terminal")
                return
            decision, extra = choice
            answer = Decision(decision, **{**extra, "modules": tuple(extra.get("modules", ()))})
            try:
                self.client.decide(approval_id, answer, actor=self.answers.actor)
                return
            except BadInput as err:
                if "already decided" in str(err):
                    return  # answered elsewhere between our look and our answer
                if not self.answers.interactive:
                    raise
                if self.out is not None:
                    self.out.print(f"  [red]{plain(err)}[/]")

    def _decided_already(self, task_id: str, approval_id: str) -> None:
        """A question decided before this terminal looked — by the task's own ``--yes`` policy,
        in the daemon — is still shown to an answerer that shows what it would have answered
        (``AutoAnswers``: the plan it approves, and under ``--json`` its warnings)."""
        seen = getattr(self.answers, "seen_decided", None)
        if seen is None:
            return
        for approval in self.client.approvals(task_id):
            if approval.get("id") == approval_id:
                seen(approval)


def _until_lost(events: Iterator[dict[str, Any]]) -> Generator[dict[str, Any], None, None]:
    """``events`` until the daemon is lost for good (``DaemonError``): the stream just ends."""
    from agentfirm.api.wire import DaemonError

    with contextlib.suppress(DaemonError):
        yield from events


def result_or_raise(payload: dict[str, Any] | None, task_id: str, last_seq: int) -> dict[str, Any]:
    """The run's result from a ``task.result`` payload. Raises the error the daemon reported (its
    exit code kept), or ``DaemonError`` when the stream ended without a result."""
    from agentfirm.api.wire import DaemonError
    from agentfirm.errors import AgentfirmError

    if payload is None:
        raise DaemonError(
            f"the event stream of task {task_id} ended before its result (the daemon stopped?); "
            f"it resumes when the daemon starts again",
            hint=f"agentfirm tasks watch {task_id} --after-seq {last_seq}",
        )
    result = payload.get("result")
    if isinstance(result, dict):
        return result
    err = AgentfirmError(str(payload.get("error") or "the daemon refused the task"))
    err.exit_code = int(payload.get("exit_code") or 1)
    raise err


def drive(
    client: Any,
    task_id: str,
    *,
    after_seq: int,
    out: Console | None,
    answers: Answerer,
) -> dict[str, Any]:
    """Follow a task the daemon has just been asked to drive, answering its questions, and return
    its result (the ``run --json`` document). Ctrl-C leaves the task to the daemon."""
    follower = Follower(client, out, answers)
    try:
        payload = follower.follow(task_id, after_seq)
    except KeyboardInterrupt:
        from agentfirm.cli.output import error

        if follower.asking:
            error(
                f"stopped following; task {task_id} waits in the daemon for the answer to its "
                f"question (agentfirm resume {task_id} asks it again here, or agentfirm tasks "
                f"cancel {task_id})"
            )
        else:
            error(
                f"stopped following; task {task_id} goes on in the daemon "
                f"(agentfirm tasks watch {task_id}, or agentfirm tasks cancel {task_id})"
            )
        raise
    return result_or_raise(payload, task_id, follower.last_seq)
