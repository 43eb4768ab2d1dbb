"""Executing a notebook headless in a fresh kernel of this very Python (nbclient + ipykernel).

The kernelspec is written to a scratch directory, so the kernel is ``sys.executable`` whatever
global kernelspecs say; its sockets are IPC files in that directory (no TCP port, nothing
listening on the network).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger(__name__)

KERNEL_NAME = "agentfirm"


class KernelRun:
    """One headless execution of a notebook in a fresh kernel of this Python.

    nbclient is driven from its own thread and event loop: it installs SIGINT and SIGTERM
    handlers on the loop it runs in and never removes them, which on the caller's loop would
    replace the daemon's own shutdown handlers. Cancelling ``run`` cancels the execution and
    waits for the kernel to be shut down."""

    def __init__(
        self,
        notebook: dict[str, Any],
        *,
        workdir: Path,
        env: dict[str, str],
        startup_timeout_s: int,
        cell_timeout_s: int | None,
        python: str = sys.executable,
    ) -> None:
        """``python``: the interpreter the kernel runs (it needs ipykernel); this one by default."""
        self.notebook = notebook
        self.python = python
        self.workdir = workdir
        self.env = env
        self.startup_timeout_s = startup_timeout_s
        self.cell_timeout_s = cell_timeout_s
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[Any] | None = None
        self._cancelled = False

    async def run(self) -> tuple[dict[str, Any], str | None]:
        """Returns the executed notebook and the first error (``None`` when every cell ran)."""
        thread = asyncio.ensure_future(asyncio.to_thread(self._in_thread))
        try:
            return await asyncio.shield(thread)
        except asyncio.CancelledError:
            with self._lock:
                self._cancelled = True
                if self._loop is not None and self._task is not None:
                    self._loop.call_soon_threadsafe(self._task.cancel)
            with contextlib.suppress(BaseException):
                await thread
            raise

    def _in_thread(self) -> tuple[dict[str, Any], str | None]:
        return asyncio.run(self._execute())

    async def _execute(self) -> tuple[dict[str, Any], str | None]:
        with self._lock:
            if self._cancelled:
                raise asyncio.CancelledError
            self._loop, self._task = asyncio.get_running_loop(), asyncio.current_task()
        import nbformat
        from jupyter_client.kernelspec import KernelSpecManager
        from jupyter_client.manager import AsyncKernelManager
        from nbclient import NotebookClient
        from nbclient.exceptions import CellExecutionError

        # In memory nbclient wants each source as one string (files keep lists of lines).
        cells = [
            {**cell, "source": "".join(cell["source"])}
            if isinstance(cell.get("source"), list)
            else cell
            for cell in self.notebook["cells"]
        ]
        node = nbformat.from_dict({**self.notebook, "cells": cells})  # type: ignore[no-untyped-call]
        # Short path: the kernel's IPC sockets live here and Unix socket paths are limited.
        scratch = Path(tempfile.mkdtemp(prefix="agentfirm-k-"))
        failure: str | None = None
        try:
            manager = AsyncKernelManager(
                kernel_name=KERNEL_NAME,
                kernel_spec_manager=KernelSpecManager(
                    kernel_dirs=[str(_install_kernelspec(scratch / "kernels", self.python))]
                ),
                transport="ipc",
                ip=str(scratch / "k"),
            )
            client = NotebookClient(
                node,
                km=manager,
                kernel_name=KERNEL_NAME,
                timeout=self.cell_timeout_s,
                startup_timeout=self.startup_timeout_s,
                resources={"metadata": {"path": str(self.workdir)}},
            )
            log.info("runner.kernel_starting", workdir=str(self.workdir), python=self.python)
            # The kernel's own chatter stays off the caller's terminal; its last words explain
            # a kernel that died.
            with (scratch / "kernel.err").open("w+", encoding="utf-8") as errors:
                try:
                    # cleanup_kc: shut the kernel down at the end although the manager is ours.
                    await client.async_execute(
                        cleanup_kc=True, env=self.env, stdout=subprocess.DEVNULL, stderr=errors
                    )
                except CellExecutionError as err:
                    failure = f"{err.ename}: {err.evalue}"
                except (RuntimeError, TimeoutError, OSError) as err:  # dead kernel, start timeout
                    errors.seek(0)
                    last = [line for line in errors.read().splitlines() if line.strip()][-1:]
                    failure = f"{type(err).__name__}: {err}" + "".join(f" ({x})" for x in last)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        executed: dict[str, Any] = json.loads(json.dumps(node))
        return executed, failure


def _install_kernelspec(kernels: Path, python: str) -> Path:
    """A kernelspec that starts ipykernel with ``python`` (not whatever ``python`` a global
    kernelspec names)."""
    spec_dir = kernels / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "agentfirm",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    return kernels
