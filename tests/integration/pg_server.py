"""A throwaway PostgreSQL for the tests: initdb on a temp dir, ``pg_ctl start`` on a free loopback
port with the socket in that dir, ``pg_ctl stop -m immediate`` and the dir deleted after. The
machine's own server (:5432) is never touched.

initdb refuses to run as root, so as root the server runs as the ``postgres`` user (``runuser``).
Under CI (``CI=true``) a missing binary fails the tests; elsewhere they are skipped.

``tests/conftest.py`` registers it as a plugin, so every test can ask for its fixtures (do not
import them into a module: that module would start a server of its own).

``pg_url`` is the session's migrated database with every row deleted before each test (a few
milliseconds, where copying a database takes hundreds); ``pg_empty_url`` a new database without any
table; ``pg_server`` the server itself (``create_database``, ``drop_database``). Outside pytest
(benchmarks), ``throwaway_postgres()`` gives the same server as a context manager.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import NoReturn

import psycopg
import pytest

from agentfirm.store.db_admin import migrate

_RUN_AS = "postgres"
_SHARED_DATABASE = "agentfirm"
_SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    # Durability is worthless for a throwaway server; turning it off makes tests fast.
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
}


class PostgresUnavailable(Exception):
    """No PostgreSQL server binaries (or no way to run them) on this machine."""


@dataclass
class PgServer:
    """A running throwaway server; connect as ``user`` without a password."""

    port: int
    user: str = "postgres"
    _names: Iterator[int] = field(default_factory=lambda: count(1))

    def url(self, database: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    @property
    def admin_url(self) -> str:
        return self.url("postgres")

    def create_database(self, options: str = "") -> str:
        """A new empty database (``CREATE DATABASE … TEMPLATE template0 <options>``); its URL."""
        name = f"t{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0 {options}'.encode())
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())

    def delete_all_rows(self, url: str) -> None:
        """Empty every table of ``url``'s public schema but ``schema_migrations``."""
        with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
            # Replica mode skips foreign-key triggers, so tables can be emptied in any order.
            conn.execute("SET LOCAL session_replication_role = replica")
            tables = conn.execute(
                "SELECT quote_ident(tablename) FROM pg_tables"
                " WHERE schemaname = 'public' AND tablename <> 'schema_migrations'"
            ).fetchall()
            for (table,) in tables:
                conn.execute(f"DELETE FROM {table}".encode())


def _find_bin_dir() -> Path:
    def version(path: str) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", Path(path).parent.name))

    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True):
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).parent
    raise PostgresUnavailable("initdb/pg_ctl not found under /usr/lib/postgresql/*/bin or on PATH")


def _run_as() -> str | None:
    """initdb refuses to run as root: as root, run the server as ``postgres``."""
    if os.geteuid() != 0:
        return None
    if shutil.which("runuser") is None:
        raise PostgresUnavailable("running as root and `runuser` is missing (initdb refuses root)")
    return _RUN_AS


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _command(as_user: str | None, *argv: str) -> list[str]:
    return ["runuser", "-u", as_user, "--", *argv] if as_user else list(argv)


def _start(bin_dir: Path, root: Path, as_user: str | None, settings: dict[str, str]) -> int:
    data, sockets, logfile = root / "data", root / "sockets", root / "server.log"
    sockets.mkdir()
    if as_user:
        shutil.chown(sockets, user=as_user)
    initdb = [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"]
    subprocess.run(
        _command(as_user, *initdb, "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"),
        check=True,
        capture_output=True,
    )
    last_error = ""
    for _ in range(3):  # a free port can be taken between probing and binding
        port = _free_port()
        flags = [f"-c {k}={v}" for k, v in settings.items()]
        options = " ".join([f"-p {port}", f"-k {sockets}", *flags])
        pg_ctl = [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(logfile), "-o", options]
        started = subprocess.run(
            _command(as_user, *pg_ctl, "-w", "-t", "30", "start"), capture_output=True, text=True
        )
        if started.returncode == 0:
            return port
        last_error = started.stderr.strip() or started.stdout.strip()
        if logfile.exists():
            last_error += " | " + " ".join(logfile.read_text().splitlines()[-3:])
    raise RuntimeError(f"pg_ctl start failed: {last_error}")


@contextlib.contextmanager
def throwaway_postgres(settings: Mapping[str, str] | None = None) -> Iterator[PgServer]:
    """Start a server on a temp dir and a free loopback port; stop it and delete the dir after.
    ``settings`` override the test settings (a bench may want durable commits back).
    ``PostgresUnavailable`` when this machine cannot run one."""
    bin_dir = _find_bin_dir()
    as_user = _run_as()
    root = Path(tempfile.mkdtemp(prefix="agentfirm-pg-"))
    started = False
    try:
        if as_user:
            try:
                shutil.chown(root, user=as_user)
            except LookupError as err:
                raise PostgresUnavailable(
                    f"running as root and there is no `{as_user}` user"
                ) from err
        port = _start(bin_dir, root, as_user, {**_SERVER_SETTINGS, **(settings or {})})
        started = True
        yield PgServer(port=port)
    finally:
        if started:
            stop = [str(bin_dir / "pg_ctl"), "-D", str(root / "data"), "-m", "immediate", "-w"]
            subprocess.run(_command(as_user, *stop, "stop"), capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PostgreSQL test server unavailable under CI: {reason}")
    pytest.skip(f"PostgreSQL test server unavailable: {reason}")


def _migrate_in_thread(url: str) -> None:
    # asyncio.run in its own thread, so it cannot disturb the event loop pytest-asyncio owns.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, migrate(url)).result()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """The session's server, with a migrated ``agentfirm`` database behind ``pg_url``."""
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(throwaway_postgres())
        except PostgresUnavailable as err:
            _unavailable(str(err))
        with psycopg.connect(server.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{_SHARED_DATABASE}" TEMPLATE template0'.encode())
        _migrate_in_thread(server.url(_SHARED_DATABASE))
        yield server


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """The session's migrated database, without any row. Tests must not leave anything writing
    to it after they end (close stores, wait for subprocesses)."""
    url = pg_server.url(_SHARED_DATABASE)
    pg_server.delete_all_rows(url)
    return url


@pytest.fixture
def pg_empty_url(pg_server: PgServer) -> Iterator[str]:
    """A new database without any table, dropped after the test."""
    url = pg_server.create_database()
    yield url
    pg_server.drop_database(url)
