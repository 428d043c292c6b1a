"""Shared test fixtures: a throw-away PostgreSQL 15 server, and a fresh database per module.

The server is started once per session from the Debian binaries (``initdb``, ``pg_ctl``) in a
temporary directory, on a free local port, with trust authentication; tests that need it are
skipped with the reason when it cannot be had. Set ``DECISIONING_TEST_POSTGRES_URL`` to use an
existing server instead (its role must be allowed to create databases).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_BIN = Path(os.environ.get("DECISIONING_PG_BIN", "/usr/lib/postgresql/15/bin"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_server_user(command: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root: run it as the postgres system user then
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(_as_server_user(command), capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        pytest.skip(f"PostgreSQL {what} failed: {(done.stderr or done.stdout).strip()[-500:]}")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """URL (``postgresql+psycopg://user@host:port``, no database) of a PostgreSQL server."""
    existing = os.environ.get("DECISIONING_TEST_POSTGRES_URL")
    if existing:  # a server URL without a database, e.g. postgresql+psycopg://me@db:5432
        yield existing.rstrip("/")
        return
    initdb, pg_ctl = PG_BIN / "initdb", PG_BIN / "pg_ctl"
    if not (initdb.exists() and pg_ctl.exists()):
        pytest.skip(
            f"PostgreSQL 15 binaries not found at {PG_BIN} (install postgresql-15, or set "
            "DECISIONING_PG_BIN or DECISIONING_TEST_POSTGRES_URL)"
        )
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("running as root without runuser: cannot start PostgreSQL as postgres")
    root = Path(tempfile.mkdtemp(prefix="decisioning-pg-"))
    if os.geteuid() == 0:
        try:
            shutil.chown(root, user="postgres", group="postgres")
        except (LookupError, OSError) as exc:
            shutil.rmtree(root, ignore_errors=True)
            pytest.skip(f"cannot hand {root} to the postgres user: {exc}")
    data, port = root / "data", _free_port()
    _run(
        [str(initdb), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"],
        "initdb",
    )
    settings = (
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
    )
    start = [str(pg_ctl), "-D", str(data), "-o", settings, "-l", str(root / "log"), "-w"]
    _run([*start, "-t", "60", "start"], "start")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(
            _as_server_user([str(pg_ctl), "-D", str(data), "-m", "immediate", "stop"]),
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)


def _admin(server: str, sql: str) -> None:
    import psycopg

    conninfo = server.replace("postgresql+psycopg://", "postgresql://") + "/postgres"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(sql)


@pytest.fixture(scope="module")
def postgres_database(postgres_server: str) -> Iterator[str]:
    """URL of a fresh, empty database on the test server, dropped after the module."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    _admin(postgres_server, f'CREATE DATABASE "{name}"')
    try:
        yield f"{postgres_server}/{name}"
    finally:
        _admin(postgres_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
