"""A wheel of the running agentfirm, so a task repo carries the exact code that planned the task.

A Colab kernel or a worker on another machine has no agentfirm, and agentfirm need not be on any
package index: the notebook installs this wheel from the task repo instead (its dependencies still
come from the index, as any package's do). It is built from the modules this process imports — an
editable checkout and a regular install alike — with metadata from the installed distribution,
and is byte-for-byte reproducible (sorted entries, fixed timestamps), so the same code always has
the same hash and the notebook can check what it installs.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import importlib.metadata
import io
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from agentfirm import __version__

DIST_NAME = "agentfirm"
WHEELS_DIR = "wheels"
# Installed name → the package whose files it is. The mapped packages live outside agentfirm/ in
# a checkout (setuptools' package-dir), inside it in a regular install: both are found by import.
_PACKAGES = ("agentfirm", "agentfirm.daemon", "agentfirm.tui", "agentfirm.persona_templates")
_SKIP_DIRS = frozenset({"__pycache__"})
_SKIP_SUFFIXES = frozenset({".pyc", ".pyo"})
_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry


@dataclass(frozen=True)
class Wheel:
    filename: str
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def repo_path(self) -> str:
        """Where the task repo keeps it."""
        return f"{WHEELS_DIR}/{self.filename}"


def running_wheel() -> Wheel:
    """The wheel of the agentfirm this process runs (blocking: call it in a thread)."""
    files = dict(_package_files())
    dist_info = f"{DIST_NAME}-{__version__}.dist-info"
    files[f"{dist_info}/METADATA"] = _metadata().encode()
    files[f"{dist_info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: agentfirm\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    entry_points = _entry_points()
    if entry_points:
        files[f"{dist_info}/entry_points.txt"] = entry_points.encode()
    record_path = f"{dist_info}/RECORD"
    record = "".join(f"{path},sha256={_digest(data)},{len(data)}\n" for path, data in files.items())
    files[record_path] = (record + f"{record_path},,\n").encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(files):
            info = zipfile.ZipInfo(path, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, files[path])
    return Wheel(f"{DIST_NAME}-{__version__}-py3-none-any.whl", buffer.getvalue())


def _package_files() -> Iterator[tuple[str, bytes]]:
    seen: set[str] = set()
    for package in _PACKAGES:
        module = importlib.import_module(package)
        root = Path(next(iter(module.__path__)))
        prefix = package.replace(".", "/")
        for path in sorted(root.rglob("*")):
            relative = path.relative_to(root)
            if not path.is_file() or _SKIP_DIRS & set(relative.parts):
                continue
            if path.suffix in _SKIP_SUFFIXES:
                continue
            name = f"{prefix}/{relative.as_posix()}"
            if name not in seen:  # a regular install nests the mapped packages in agentfirm/
                seen.add(name)
                yield name, path.read_bytes()


def _metadata() -> str:
    summary, requires_python, requires = _project()
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {DIST_NAME}",
        f"Version: {__version__}",
        f"Summary: {summary}",
        f"Requires-Python: {requires_python}",
    ]
    lines += [f"Requires-Dist: {req}" for req in requires]
    return "\n".join(lines) + "\n"


def _project() -> tuple[str, str, list[str]]:
    """Summary, Python requirement and runtime dependencies of the running agentfirm. From a
    checkout, its ``pyproject.toml`` (installed metadata goes stale as the code moves on);
    otherwise the installed distribution's."""
    import agentfirm

    pyproject = Path(agentfirm.__file__).resolve().parents[1] / "pyproject.toml"
    if pyproject.is_file():
        project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
        if project.get("name") == DIST_NAME:
            return (
                str(project.get("description", "")),
                str(project.get("requires-python", ">=3.11")),
                [str(d) for d in project.get("dependencies", [])],
            )
    dist = importlib.metadata.distribution(DIST_NAME)
    # Only what agentfirm needs to run: extras (dev, bench) stay out of a kernel.
    requires = [req for req in dist.requires or () if "extra ==" not in req]
    return dist.metadata["Summary"] or "", dist.metadata["Requires-Python"] or ">=3.11", requires


def _entry_points() -> str:
    dist = importlib.metadata.distribution(DIST_NAME)
    return dist.read_text("entry_points.txt") or ""


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
