"""The house's dependency rules (ARCHITECTURE.md §2), read from the imports of every module.

Every import counts: top-level, inside functions (lazy ones) and under ``TYPE_CHECKING`` — a rule
that only holds at start-up is not a rule.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Where each installed package's files are (setuptools' package-dir mapping in pyproject.toml).
PACKAGE_DIRS = {
    "agentfirm": ROOT / "agentfirm",
    "agentfirm.daemon": ROOT / "daemon",
    "agentfirm.tui": ROOT / "tui",
}
FRONT_ENDS = ("agentfirm.cli", "agentfirm.daemon", "agentfirm.tui", "agentfirm.slack")
AGENTS = ("agentfirm.master", "agentfirm.build_master", "agentfirm.runs")


@dataclass(frozen=True)
class Rule:
    """Modules under ``importer`` may not import anything under ``forbidden``."""

    importer: str
    forbidden: tuple[str, ...]
    why: str
    exempt: tuple[str, ...] = ()


RULES = (
    # ``python -m agentfirm`` is the command line's entry point, not core code.
    Rule(
        "agentfirm",
        FRONT_ENDS,
        "the core never imports a front end",
        exempt=(*FRONT_ENDS, "agentfirm.__main__"),
    ),
    Rule(
        "agentfirm.router",
        (*AGENTS, "agentfirm.tools", "agentfirm.handoff"),
        "the router knows no agents",
    ),
    Rule(
        "agentfirm.store",
        (*AGENTS, "agentfirm.router", "agentfirm.tools", "agentfirm.handoff", "agentfirm.bus"),
        "storage knows no providers or agents",
    ),
    Rule("agentfirm.tools", AGENTS, "tools know no agents"),
    Rule(
        "agentfirm.build_master",
        ("agentfirm.master",),
        "the Build Master reaches the Master only over the bus",
    ),
    Rule(
        "agentfirm.domain",
        ("agentfirm.",),
        "the domain's words depend on nothing but errors and money",
        exempt=(),
    ),
)
DOMAIN_MAY_IMPORT = ("agentfirm.domain", "agentfirm.errors", "agentfirm.money", "agentfirm.ids")


@dataclass(frozen=True)
class Violation:
    path: Path
    line: int
    imported: str
    rule: Rule

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: imports {self.imported} — {self.rule.why}"


def modules(package_dirs: dict[str, Path]) -> Iterator[tuple[str, Path]]:
    """Every module as (dotted name, file), with the mapped packages under their installed names."""
    for package, directory in package_dirs.items():
        for path in sorted(directory.rglob("*.py")):
            parts = list(path.relative_to(directory).with_suffix("").parts)
            if any(p in ("__pycache__",) for p in parts):
                continue
            inner = [p for p in parts if p != "__init__"]
            dotted = ".".join([package, *inner])
            # A mapped package found again under the core's directory walk is not the core.
            yield dotted, path


def imports_of(dotted: str, path: Path) -> Iterator[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = dotted if path.name == "__init__.py" else dotted.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            yield node.lineno, source
            # ``from agentfirm import cli`` imports the module agentfirm.cli.
            for alias in node.names:
                yield node.lineno, f"{source}.{alias.name}"


def under(name: str, prefix: str) -> bool:
    return (
        name == prefix
        or name.startswith(prefix + ".")
        or (prefix.endswith(".") and name.startswith(prefix))
    )


def violations(package_dirs: dict[str, Path]) -> list[Violation]:
    found: list[Violation] = []
    for dotted, path in modules(package_dirs):
        for line, imported in imports_of(dotted, path):
            if not imported.startswith("agentfirm"):
                continue
            for rule in RULES:
                if not under(dotted, rule.importer) or any(under(dotted, e) for e in rule.exempt):
                    continue
                if rule.importer == "agentfirm.domain":
                    if (
                        any(under(imported, ok) for ok in DOMAIN_MAY_IMPORT)
                        or imported == "agentfirm"
                    ):
                        continue
                    if under(imported, "agentfirm.__version__"):
                        continue
                if any(under(imported, f) for f in rule.forbidden):
                    found.append(
                        Violation(
                            path.relative_to(ROOT) if path.is_relative_to(ROOT) else path,
                            line,
                            imported,
                            rule,
                        )
                    )
    # ``from a.b import c`` is reported once, as the module it names first.
    first: dict[tuple[Path, int, str], Violation] = {}
    for v in found:
        key = (v.path, v.line, v.rule.why)
        if key not in first or len(v.imported) < len(first[key].imported):
            first[key] = v
    return sorted(first.values(), key=str)


def test_the_house_keeps_its_dependency_rules() -> None:
    broken = violations(PACKAGE_DIRS)
    assert not broken, "dependency rules broken:\n" + "\n".join(map(str, broken))


def test_a_core_module_importing_a_front_end_is_caught(tmp_path: Path) -> None:
    core = tmp_path / "agentfirm"
    (core / "router").mkdir(parents=True)
    (core / "__init__.py").write_text("")
    (core / "router" / "__init__.py").write_text("")
    (core / "router" / "router.py").write_text(
        "def call() -> None:\n    from agentfirm.master.agent import MasterAgent\n"
    )
    (core / "store.py").write_text("from .daemon import client\n")
    daemon = tmp_path / "daemon"
    daemon.mkdir()
    # A front end importing the core is the allowed direction.
    (daemon / "__init__.py").write_text("from agentfirm.router import router\n")
    found = violations({"agentfirm": core, "agentfirm.daemon": daemon})
    assert sorted((str(v.path.name), v.imported, v.rule.why) for v in found) == [
        ("router.py", "agentfirm.master.agent", "the router knows no agents"),
        ("store.py", "agentfirm.daemon", "the core never imports a front end"),
    ]


MAX_MODULE_LINES = 500
MAX_TOP_MODULES = 12


def test_the_house_stays_readable() -> None:
    """Issue 16's shape: no module over 500 lines, and ``agentfirm/`` opens on its packages
    and at most a dozen modules of its own."""
    long = sorted(
        f"{path.relative_to(ROOT)}: {lines} lines"
        for top in PACKAGE_DIRS.values()
        for path in top.rglob("*.py")
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    )
    assert not long, f"modules over {MAX_MODULE_LINES} lines (split them by job):\n" + "\n".join(
        long
    )
    top = sorted(p.name for p in PACKAGE_DIRS["agentfirm"].glob("*.py"))
    assert len(top) <= MAX_TOP_MODULES, top
