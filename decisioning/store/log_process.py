"""Inserting decision-log batches from a helper process, for a SQLite database file.

A thread that inserts rows through ``sqlite3`` lets go of the interpreter lock at every step of
every row and takes it back after. The deciding thread lets go of it too, around numpy's
allocations and loops, and each time the writer takes it, the decision waits to get it back: a
decision's numpy work took twice as long while the writer ran (measured). A helper process
does the inserts instead. The log writer's thread hands it a whole batch in one message over a
pipe and waits for its commit, so the writer's guarantees stay as they are: rows stay visible
until committed, a failed batch is kept and retried, a reader's flush waits for the commit.

The helper runs this file as a script (the standard library only: it starts in milliseconds
and shares no state with the service). Messages both ways are a 4-byte length and a body: a
pickled ``(statement, rows)`` batch one way; ``b"0"`` and the row count, or ``b"1"`` and the
error, the other. The helper exits when its input closes, so it never outlives the service.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import sqlite3
import struct
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import IO, Any

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows
    fcntl = None  # type: ignore[assignment]

_LENGTH = struct.Struct(">I")
#: bytes of a pipe's buffer, where the system allows it (Linux's default limit is 1 MiB)
_PIPE_BUFFER = 1 << 20


class InsertFailed(sqlite3.DatabaseError):
    """The helper process could not insert a batch (nothing of the batch was inserted)."""


def sqlite_pragmas(busy_timeout: float, *, file: bool = True) -> list[str]:
    """The PRAGMAs every connection of the store runs, the helper's included.

    WAL for a file: readers never wait for writers. ``synchronous=NORMAL``: durable at every
    checkpoint; in WAL mode a crash loses at most the last commits.
    """
    pragmas = [f"PRAGMA busy_timeout={int(busy_timeout * 1000)}"]
    if file:
        pragmas += ["PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL"]
    return pragmas


def _send(stream: IO[bytes], body: bytes) -> None:
    stream.write(_LENGTH.pack(len(body)) + body)
    stream.flush()


def _receive(stream: IO[bytes]) -> bytes | None:
    """The next message's body; None when the other side has closed the pipe."""
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return None
    (size,) = _LENGTH.unpack(head)
    body = stream.read(size)
    if len(body) < size:
        return None
    return body


def _widen(stream: IO[bytes] | None) -> None:
    """Give a pipe a larger buffer (Linux): a batch of rows crosses it in fewer steps."""
    setsize = getattr(fcntl, "F_SETPIPE_SZ", None) if fcntl is not None else None
    if stream is None or setsize is None:
        return
    with contextlib.suppress(OSError):  # above the system's limit: the default buffer
        fcntl.fcntl(stream.fileno(), setsize, _PIPE_BUFFER)


class InsertProcess:
    """Inserts batches of rows into a SQLite file from a helper process, one at a time.

    Parameters
    ----------
    database : str
        Path of the SQLite database file.
    busy_timeout : float
        Seconds an insert waits for the database's write lock.

    The helper starts on the first insert, and again after it has died or been closed.
    """

    def __init__(self, database: str, *, busy_timeout: float) -> None:
        self.database = os.path.abspath(database)
        self.busy_timeout = busy_timeout
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._owner = 0  # the process that started the helper (a fork starts its own)
        self.started = 0

    @property
    def pid(self) -> int | None:
        """The helper's process id while it runs."""
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def insert(self, statement: str, rows: Sequence[tuple[Any, ...]]) -> int:
        """Run ``statement`` for every row in one transaction; the count of rows it changed.

        Raises :class:`InsertFailed` if the database refused the batch. A helper that died is
        replaced and the batch sent once more (the statement must be safe to repeat, such as
        ``INSERT OR IGNORE``: the dead helper may have committed before it could answer).
        """
        body = pickle.dumps((statement, list(rows)), protocol=pickle.HIGHEST_PROTOCOL)
        with self._lock:
            try:
                reply = self._exchange(body)
            except (OSError, EOFError):
                self._stop(kill=True)
                try:
                    reply = self._exchange(body)
                except (OSError, EOFError) as exc:
                    code = self._stop(kill=True)
                    raise InsertFailed(
                        f"decision log: the insert process for {self.database} stopped "
                        f"(exit code {code}) twice in a row"
                    ) from exc
        if reply[:1] != b"0":
            raise InsertFailed(f"decision log insert into {self.database}: {reply[1:].decode()}")
        return int(reply[1:])

    def close(self) -> None:
        """Let the helper finish and exit (a later insert starts a new one)."""
        with self._lock:
            self._stop(kill=False)

    def _exchange(self, body: bytes) -> bytes:
        process = self._running()
        assert process.stdin is not None and process.stdout is not None
        _send(process.stdin, body)
        reply = _receive(process.stdout)
        if reply is None:
            raise EOFError("the insert process closed its output")
        return reply

    def _running(self) -> subprocess.Popen[bytes]:
        if self._process is not None and self._owner != os.getpid():
            self._process = None  # the parent's helper, inherited through a fork: not ours
        if self._process is None or self._process.poll() is not None:
            self._stop(kill=True)
            self._process = subprocess.Popen(  # noqa: S603 - this interpreter, this file
                [sys.executable, "-I", "-S", __file__, self.database, str(self.busy_timeout)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                close_fds=True,
            )
            for stream in (self._process.stdin, self._process.stdout):
                _widen(stream)
            self._owner = os.getpid()
            self.started += 1
        return self._process

    def _stop(self, *, kill: bool) -> int | None:
        process, self._process = self._process, None
        if process is None:
            return None
        if kill:
            process.kill()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):  # the pipe broke: the helper is gone
                    stream.close()
        try:
            return process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()


def serve(database: str, busy_timeout: float) -> None:
    """The helper's loop: insert each batch read from stdin, answer on stdout."""
    db = sqlite3.connect(database, timeout=busy_timeout, isolation_level=None)
    for pragma in sqlite_pragmas(busy_timeout):
        db.execute(pragma)
    source, answers = sys.stdin.buffer, sys.stdout.buffer
    while (body := _receive(source)) is not None:
        statement, rows = pickle.loads(body)  # noqa: S301 - sent by the process that started us
        try:
            db.execute("BEGIN IMMEDIATE")
            changed = db.executemany(statement, rows).rowcount
            db.execute("COMMIT")
            reply = b"0" + str(changed).encode()
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            reply = b"1" + f"{type(exc).__name__}: {exc}".encode()
        _send(answers, reply)
    db.close()


if __name__ == "__main__":
    serve(sys.argv[1], float(sys.argv[2]))
