"""SQLite persistence of tasks, attempts and workers; recovery on start.

One file in WAL mode with ``synchronous=NORMAL``: a commit is durable against a crash
of the process (SIGKILL, exceptions: the WAL is in the OS page cache and replayed on
open) but not against power loss, where the last commits before the outage may be
lost (SQLite's documented WAL/NORMAL trade-off). That is what makes group commit
cheap: the scheduler writes every change of a batch (inserts, state changes,
attempts) with ``executemany`` in one transaction, without an fsync per task.

The store is the durable log; the scheduler keeps the live state in memory and marks
records dirty. ``commit`` runs off the event loop (``anyio.to_thread``) on one
connection, serialised by a lock. Nothing else writes the database.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from typing import Any

import anyio
import attrs

from ._spec import TaskSpec, WorkerSpec, check_spec
from .model import Task

SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks(
    id TEXT PRIMARY KEY, seq INTEGER NOT NULL, spec TEXT NOT NULL, state TEXT NOT NULL,
    attempt INTEGER NOT NULL, worker TEXT, reason TEXT NOT NULL, exit_code INTEGER,
    runtime_s REAL, stdout TEXT, stderr TEXT, submitted REAL NOT NULL, reserved REAL,
    started REAL, finished REAL, devices TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS tasks_state ON tasks(state);
CREATE TABLE IF NOT EXISTS attempts(
    task TEXT NOT NULL, attempt INTEGER NOT NULL, worker TEXT NOT NULL, state TEXT NOT NULL,
    reserved REAL NOT NULL, started REAL, ended REAL, reason TEXT NOT NULL,
    PRIMARY KEY(task, attempt));
CREATE TABLE IF NOT EXISTS workers(
    id TEXT PRIMARY KEY, spec TEXT NOT NULL, state TEXT NOT NULL, reason TEXT NOT NULL,
    updated REAL NOT NULL);
"""


@attrs.define(eq=False)
class TaskRecord:
    """The live state of one task (mutated only by the applier)."""

    id: str
    seq: int
    spec: TaskSpec
    spec_json: str
    model: Task
    state: str = "pending"
    attempt: int = 0            # number of the current (or last) attempt; 0 = never reserved
    worker: str | None = None
    reason: str = "waiting for batch"
    exit_code: int | None = None
    runtime_s: float | None = None
    stdout: str | None = None
    stderr: str | None = None
    submitted: float = 0.0
    reserved: float | None = None
    started: float | None = None
    finished: float | None = None
    devices: tuple[int, ...] = ()   # GPU devices held on ``worker``
    version: int = 0            # bumped on every change: plans check it before applying
    preemptions: int = 0        # attempts ended by preemption (restored from the attempts table)

    def row(self) -> tuple[Any, ...]:
        return (self.id, self.seq, self.spec_json, self.state, self.attempt, self.worker, self.reason,
                self.exit_code, self.runtime_s, self.stdout, self.stderr, self.submitted, self.reserved,
                self.started, self.finished, json.dumps(list(self.devices)))


@attrs.define(eq=False)
class AttemptRecord:
    task: str
    attempt: int
    worker: str
    state: str                  # reserved, running, succeeded, failed, timeout, cancelled, lost, released, rejected,
                                # error, preempted
    reserved: float
    started: float | None = None
    ended: float | None = None
    reason: str = ""

    def row(self) -> tuple[Any, ...]:
        return (self.task, self.attempt, self.worker, self.state, self.reserved, self.started, self.ended,
                self.reason)


@attrs.define
class WorkerRow:
    spec: WorkerSpec
    state: str
    reason: str


class Store:
    """The scheduler's SQLite file. Open with ``await Store.open(path)``."""

    def __init__(self, conn: sqlite3.Connection, epoch: float) -> None:
        self._conn = conn
        self.epoch = epoch
        self._lock = anyio.Lock()
        self.commits = 0

    @classmethod
    async def open(cls, path: str) -> Store:
        return await anyio.to_thread.run_sync(cls._open_sync, path)

    @classmethod
    def _open_sync(cls, path: str) -> Store:
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.executescript(_SCHEMA)
        row = conn.execute("SELECT value FROM meta WHERE key='epoch'").fetchone()
        if row is None:
            epoch = time.time()
            conn.execute("INSERT INTO meta VALUES('epoch', ?), ('schema', ?)", (repr(epoch), SCHEMA_VERSION))
        else:
            epoch = float(row[0])
        return cls(conn, epoch)

    def clock(self) -> float:
        """Scheduler time: seconds since this store was created (stable across restarts)."""
        return time.time() - self.epoch

    # ------------------------------------------------------------------ recovery
    async def load(self) -> tuple[list[TaskRecord], list[WorkerRow]]:
        """Every task (live state as last committed) and every worker record."""
        async with self._lock:
            return await anyio.to_thread.run_sync(self._load_sync)

    def _load_sync(self) -> tuple[list[TaskRecord], list[WorkerRow]]:
        tasks = []
        for row in self._conn.execute("SELECT * FROM tasks ORDER BY seq"):
            (tid, seq, spec_json, state, attempt, worker, reason, code, rt, out, err,
             submitted, reserved, started, finished, devices) = row
            spec = TaskSpec.from_dict(json.loads(spec_json))
            model = check_spec(spec, tid, submitted)
            tasks.append(TaskRecord(tid, seq, spec, spec_json, model, state, attempt, worker, reason, code, rt,
                                    out, err, submitted, reserved, started, finished, tuple(json.loads(devices))))
        preempted = dict(self._conn.execute(
            "SELECT task, COUNT(*) FROM attempts WHERE state='preempted' GROUP BY task").fetchall())
        for rec in tasks:
            rec.preemptions = int(preempted.get(rec.id, 0))
        workers = [WorkerRow(WorkerSpec(**json.loads(spec)), state, reason)
                   for spec, state, reason in self._conn.execute("SELECT spec, state, reason FROM workers")]
        return tasks, workers

    # ------------------------------------------------------------------ writing
    async def commit(self, tasks: Iterable[TaskRecord] = (), attempts: Iterable[AttemptRecord] = (),
                     workers: Iterable[WorkerRow] = ()) -> None:
        """Write the given records in one transaction (off the loop)."""
        trows = [t.row() for t in tasks]
        arows = [a.row() for a in attempts]
        wrows = [(w.spec.id, json.dumps(w.spec.to_dict()), w.state, w.reason, self.clock()) for w in workers]
        if not (trows or arows or wrows):
            return
        async with self._lock:
            await anyio.to_thread.run_sync(self._commit_sync, trows, arows, wrows)

    def _commit_sync(self, trows: list[tuple[Any, ...]], arows: list[tuple[Any, ...]],
                     wrows: list[tuple[Any, ...]]) -> None:
        c = self._conn
        c.execute("BEGIN IMMEDIATE")
        try:
            if trows:
                c.executemany("INSERT OR REPLACE INTO tasks VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", trows)
            if arows:
                c.executemany("INSERT OR REPLACE INTO attempts VALUES (?,?,?,?,?,?,?,?)", arows)
            if wrows:
                c.executemany("INSERT OR REPLACE INTO workers VALUES (?,?,?,?,?)", wrows)
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        self.commits += 1

    async def attempts_of(self, task_id: str) -> list[AttemptRecord]:
        async with self._lock:
            rows = await anyio.to_thread.run_sync(
                lambda: self._conn.execute("SELECT * FROM attempts WHERE task=? ORDER BY attempt", (task_id,)).fetchall())
        return [AttemptRecord(*r) for r in rows]

    async def close(self) -> None:
        async with self._lock:
            await anyio.to_thread.run_sync(self._conn.close)
