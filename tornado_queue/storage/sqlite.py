"""SqliteStore: tasks in one SQLite file (WAL), durable across restarts and kill -9."""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import orjson

from tornado_queue import ids
from tornado_queue.clock import Clock, SystemClock
from tornado_queue.errors import (
    InvalidTransition,
    PushQueue,
    StoreUnavailable,
    TaskNotFound,
    TooManySchedules,
    key_conflict,
    lease_lost,
    not_failed,
    not_processing,
    parent_deleted_error,
    parent_failed_error,
    still_processing,
)
from tornado_queue.limits import MAX_SCHEDULES, SCHEDULE_ROUND
from tornado_queue.models import (
    DEFAULT_QUEUE,
    PURGEABLE,
    Enqueued,
    Event,
    Extras,
    Happened,
    HistoryEntry,
    NewTask,
    QueueSettings,
    Task,
    TaskStatus,
    WorkerInfo,
    holder,
)
from tornado_queue.schedules import Round, Schedule, fire
from tornado_queue.storage import sqlite_control as control
from tornado_queue.storage import sqlite_history as history
from tornado_queue.storage import sqlite_schedules as schedule_rows
from tornado_queue.storage import sqlite_workflows as workflows
from tornado_queue.storage.base import (
    EXPIRED_ERROR,
    RETIRED,
    FinishedListener,
    Policy,
    ReadyListener,
    Store,
    item_ids,
    repeats_closing,
    to_create,
)
from tornado_queue.storage.delivery import delivers_more
from tornado_queue.storage.events import EventFeed, LocalFeed
from tornado_queue.storage.group_commit import GroupWriter
from tornado_queue.storage.workers import WorkerBook

T = TypeVar("T")

_DELIVERED = Happened.DELIVERED

SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY,
    queue TEXT NOT NULL,
    payload BLOB NOT NULL,
    status TEXT NOT NULL,
    priority INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    created_at REAL NOT NULL,
    available_at REAL NOT NULL,
    lease_id TEXT,
    lease_expires_at REAL,
    started_at REAL,
    finished_at REAL,
    result BLOB,
    error TEXT,
    seq INTEGER NOT NULL,
    forget_at REAL,
    moved INTEGER,
    closed_lease TEXT,
    grp TEXT,
    expires_at REAL,
    dead_lettered_from TEXT,
    backoff REAL,
    blocked INTEGER,
    progress BLOB,
    parents TEXT,
    dependents TEXT,
    waiting_on INTEGER,
    hold REAL,
    schedule TEXT,
    fire_time REAL,
    history TEXT
);
CREATE TABLE IF NOT EXISTS queue_settings (
    queue TEXT NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (queue, name)
) WITHOUT ROWID;
"""
"""`moved` orders the tasks of every state but pending by when they entered that state (a value
of the same sequence as `seq`); `closed_lease` is the lease that last completed or failed the
task (see `Task.closed_lease`); `grp` is the task's group; `backoff` its retry backoff base
(NULL: the policy's); `blocked` is 1 while a pending task waits behind its group's head (it is
then out of the pending order); `progress` is the worker's last report (serialized JSON);
`parents`, `dependents`, `waiting_on` and `hold` link a workflow's tasks (see
`sqlite_workflows`); `schedule` and `fire_time` name the schedule that enqueued the task and
the occurrence it stands for; `history` is its last changes (see `sqlite_history`). Databases
made before a column existed gain it on open.

`queue_settings` holds one row per set setting of a queue (`QueueSettings` field name, value as
JSON text), so new settings need no new column; a row lives until `configure` clears it."""

ADDED_COLUMNS = (
    ("moved", "INTEGER"),
    ("closed_lease", "TEXT"),
    ("grp", "TEXT"),
    ("expires_at", "REAL"),
    ("dead_lettered_from", "TEXT"),
    ("backoff", "REAL"),
    ("blocked", "INTEGER"),
    ("progress", "BLOB"),
    ("parents", "TEXT"),
    ("dependents", "TEXT"),
    ("waiting_on", "INTEGER"),
    ("hold", "REAL"),
    ("schedule", "TEXT"),
    ("fire_time", "REAL"),
    ("history", "TEXT"),
)

INDEXES = """
DROP INDEX IF EXISTS pending_order;
CREATE INDEX IF NOT EXISTS ready_order ON tasks (queue, priority DESC, seq)
    WHERE status = 'pending' AND blocked IS NULL;
CREATE INDEX IF NOT EXISTS waiting_order ON tasks (queue, seq) WHERE blocked = 1;
CREATE INDEX IF NOT EXISTS group_order ON tasks (queue, grp, seq) WHERE blocked = 1;
CREATE INDEX IF NOT EXISTS lease_expiry ON tasks (lease_expires_at) WHERE status = 'processing';
CREATE INDEX IF NOT EXISTS schedule ON tasks (available_at) WHERE status = 'scheduled';
CREATE INDEX IF NOT EXISTS retention ON tasks (forget_at) WHERE status IN ('completed', 'failed');
DROP INDEX IF EXISTS expiry;
CREATE INDEX IF NOT EXISTS expiry_order ON tasks (expires_at)
    WHERE status IN ('pending', 'scheduled', 'waiting') AND expires_at IS NOT NULL;
DROP INDEX IF EXISTS listing;
DROP INDEX IF EXISTS state_listing;
CREATE INDEX IF NOT EXISTS listing_order ON tasks (queue, status, moved)
    WHERE status IN ('scheduled', 'waiting', 'processing', 'completed', 'failed');
CREATE TABLE IF NOT EXISTS counts (
    queue TEXT NOT NULL,
    status TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (queue, status)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS count_insert AFTER INSERT ON tasks BEGIN
    INSERT INTO counts VALUES (NEW.queue, NEW.status, 1)
        ON CONFLICT (queue, status) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS count_delete AFTER DELETE ON tasks BEGIN
    UPDATE counts SET n = n - 1 WHERE queue = OLD.queue AND status = OLD.status;
END;
DROP TRIGGER IF EXISTS count_update;
CREATE TRIGGER IF NOT EXISTS count_change AFTER UPDATE OF status, queue ON tasks
    WHEN OLD.status IS NOT NEW.status OR OLD.queue IS NOT NEW.queue BEGIN
    UPDATE counts SET n = n - 1 WHERE queue = OLD.queue AND status = OLD.status;
    INSERT INTO counts VALUES (NEW.queue, NEW.status, 1)
        ON CONFLICT (queue, status) DO UPDATE SET n = n + 1;
END;
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY,
    task_id TEXT NOT NULL,
    fingerprint BLOB NOT NULL,
    forget_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS idempotency_expiry ON idempotency (forget_at);
CREATE TABLE IF NOT EXISTS sequence (id INTEGER PRIMARY KEY CHECK (id = 0), next INTEGER);
INSERT OR IGNORE INTO sequence VALUES (0, 0);
CREATE TABLE IF NOT EXISTS events (
    queue TEXT NOT NULL,
    event TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (queue, event)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS groups (
    queue TEXT NOT NULL,
    grp TEXT NOT NULL,
    head TEXT NOT NULL,
    PRIMARY KEY (queue, grp)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS deliveries (
    queue TEXT NOT NULL,
    n INTEGER NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (queue, n)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS wakeups (queue TEXT PRIMARY KEY, at REAL NOT NULL) WITHOUT ROWID;
"""
"""`groups` holds the head of each group in use (a group with no head has no row: its next
task, if any, became the head). `deliveries` numbers each queue's deliveries (n) while it has a
rate limit, keeping the times of the last `rate_limit.tasks` of them; `wakeups` holds when a
rate-limited queue's window next lets a task through, for a consumer it turned away. The count
trigger moves a task's count when its state or its queue changes (a dead-lettered task)."""

COLUMNS = (
    "id, queue, payload, status, priority, attempts, max_attempts, created_at, available_at, "
    "lease_id, lease_expires_at, started_at, finished_at, result, error, seq, forget_at, "
    "closed_lease, grp, expires_at, dead_lettered_from, backoff, blocked, progress, parents, "
    "dependents, waiting_on, hold, schedule, fire_time, history"
)
LISTED_STATES = "('scheduled', 'waiting', 'processing', 'completed', 'failed')"
"""The condition of the `listing_order` index, repeated in its queries so SQLite uses it."""


class SqliteStore(Store):
    """Every task in one SQLite database file, one transaction per operation.

    Durability: WAL journal with `synchronous=FULL` by default, so a task is on disk before its
    2xx is written and survives kill -9 or a power cut; `sync="normal"` is faster and can lose
    the last transactions on a power cut (never on a process crash).

    Deadlines (leases, delays, backoffs, retention) are wall-clock times stored with the task,
    so they carry on across restarts: after a restart, leases that ran out meanwhile expire at
    the first operation. Counts per queue and state are kept by triggers in the same
    transaction, so stats never scan.

    Group commit: one writer thread owns the connection and runs every operation queued
    while it was busy in one transaction, each in its own savepoint, then commits once (one
    fsync for the group) and only then answers each caller (see `group_commit`). Each group
    first applies what is due at its own clock reading; each operation's timestamps come
    from the clock read for it. Callers block until answered: handlers call this store in an
    executor (`blocking = True`), never on the IOLoop.

    Each task's history is in its row (see `sqlite_history`). The workers and the event feed
    live in this process: what an operation did to them is applied once its group has
    committed, in the order of the group's operations, so a rolled-back operation leaves no
    trace there either. The workers' held tasks are read back from the processing tasks when
    the store opens.
    """

    blocking = True

    def __init__(
        self,
        path: str | Path,
        policy: Policy | None = None,
        clock: Clock | None = None,
        sync: str = "full",
    ) -> None:
        self.policy = policy or Policy()
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._listeners: list[ReadyListener] = []
        self._finished_listeners: list[FinishedListener] = []
        # Room for every statement this store prepares (each history-appending form too).
        self._db = sqlite3.connect(
            path, check_same_thread=False, isolation_level=None, cached_statements=256
        )
        history.register(self._db)
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute(f"PRAGMA synchronous = {'NORMAL' if sync == 'normal' else 'FULL'}")
        self._db.executescript(SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(tasks)")}
        for name, kind in ADDED_COLUMNS:
            if name in columns:
                continue
            try:
                self._db.execute(f"ALTER TABLE tasks ADD COLUMN {name} {kind}")
            except sqlite3.OperationalError as error:
                # Another server opening the same database added it first.
                if "duplicate column" not in str(error):
                    raise
        self._db.executescript(INDEXES)
        self._db.executescript(schedule_rows.SCHEMA)
        # The workers have a lock of their own: naming or listing them never waits for a
        # group's transaction (which holds `_lock` while it writes).
        self._workers = WorkerBook()
        self._workers_lock = threading.Lock()
        for worker, task_id, delivered_at in history.holders(self._db):
            self._workers.took(worker, task_id, delivered_at)
        self._feed = LocalFeed()
        self._done: list[_Transaction] = []
        """The transactions of the group being written whose operations succeeded, in order
        (the writer's only): their effects on the workers and the feed wait for the commit."""
        # The writer holds the lock for each whole group; `check` and `close` take it too.
        self._writer = GroupWriter(
            lambda: self._db, self._lock, self._open_group, committed=self._committed
        )

    # -- commands ---------------------------------------------------------------------------

    def enqueue_many(self, new_tasks: Sequence[NewTask]) -> list[Enqueued]:
        def apply(tx: _Transaction) -> list[Enqueued]:
            replays = self._match_keys(tx, new_tasks)
            if self.policy.limited:
                self._check_room(tx, to_create(new_tasks, replays))
            new_ids = [ids.task_id() for _ in new_tasks]
            first_ids = {key: first_id for key, first_id in replays.items()}
            stands_for, creates = item_ids(new_tasks, new_ids, first_ids)
            parents = workflows.check_parents(tx, new_tasks, stands_for, creates)
            outcomes = []
            # One read and one write of the sequence and of each queue's total for the whole
            # batch, instead of one per task: the same values, fewer statements.
            seq = tx.execute("SELECT next FROM sequence WHERE id = 0").fetchone()[0]
            enqueued: Counter[str] = Counter()
            # Each queue's settings, read once per batch: they shape its new tasks.
            settings: dict[str, QueueSettings] = {}
            for new_task, task_id, after in zip(new_tasks, new_ids, parents, strict=True):
                key = new_task.idempotency_key
                if key is not None and key in replays:
                    first_id = replays[key]
                    outcomes.append(Enqueued(first_id, self._get(tx, first_id), created=False))
                    continue
                queue = new_task.queue
                if queue not in settings:
                    settings[queue] = self._settings(tx, queue)
                task = self._insert(tx, task_id, new_task, seq, settings[queue], after)
                seq += 1
                enqueued[new_task.queue] += 1
                if key is not None:
                    forget_at = tx.now + self.policy.retention_seconds
                    tx.execute(
                        "INSERT OR REPLACE INTO idempotency VALUES (?, ?, ?, ?)",
                        (key, task_id, new_task.fingerprint, forget_at),
                    )
                    replays[key] = task_id
                outcomes.append(Enqueued(task_id, task, created=True))
            tx.execute("UPDATE sequence SET next = ? WHERE id = 0", (seq,))
            for queue, count in enqueued.items():
                self._count_event(tx, queue, Event.ENQUEUED, count)
            return outcomes

        return self._run(apply)

    def dequeue_many(
        self,
        count: int,
        lease_seconds: float | None = None,
        queue: str = DEFAULT_QUEUE,
        worker: str | None = None,
        push: bool = False,
    ) -> list[Task]:
        def apply(tx: _Transaction) -> list[Task]:
            # One settings read per dequeue: whether it is pushed, its delivery limits and its
            # default lease.
            settings = self._settings(tx, queue)
            if (settings.push is not None) != push:
                if settings.push is not None:
                    raise PushQueue(queue)  # before anything is written: nothing changes
                return []  # a pusher asking for a queue no longer pushed
            wanted = self._allowance(tx, queue, settings, count)
            if wanted <= 0:
                return []
            lease = lease_seconds or settings.lease_seconds or self.policy.lease_seconds
            chosen = [
                row[0]
                for row in tx.execute(
                    "SELECT id FROM tasks WHERE queue = ? AND status = 'pending' "
                    "AND blocked IS NULL ORDER BY priority DESC, seq LIMIT ?",
                    (queue, wanted),
                )
            ]
            taken = []
            for task_id in chosen:
                # The delivery, its history entry and the task as it is now: one statement.
                lease_id = ids.lease_id()
                entry = HistoryEntry(tx.now, _DELIVERED, lease_id, worker)
                row = tx.execute(
                    "UPDATE tasks SET status = 'processing', attempts = attempts + 1, "
                    f"lease_id = ?, started_at = ?, lease_expires_at = ?, moved = ?, "
                    f"{history.APPEND} WHERE id = ? RETURNING {COLUMNS}",
                    (lease_id, tx.now, tx.now + lease, self._next_seq(tx), *entry, task_id),
                ).fetchone()
                task = _task(row)
                taken.append(task)
                if worker is not None:
                    tx.workers.append((worker, task_id, _DELIVERED))
                tx.note(task, entry)
            if settings.rate_limit is not None:
                control.note_deliveries(tx, queue, settings.rate_limit, len(chosen))
            return taken

        return self._run(apply)

    def _allowance(self, tx: _Transaction, queue: str, settings: QueueSettings, wanted: int) -> int:
        """How many tasks the queue's delivery settings let a dequeue take now."""
        if settings.paused:
            return 0
        if settings.max_processing is not None:
            processing = self._counts(tx, queue)[TaskStatus.PROCESSING]
            wanted = min(wanted, settings.max_processing - processing)
        if settings.rate_limit is not None and wanted > 0:
            wanted = control.rate_allowance(tx, queue, settings.rate_limit, wanted)
        return wanted

    def heartbeat(
        self, task_id: str, lease_seconds: float | None = None, lease_id: str | None = None
    ) -> Task:
        def apply(tx: _Transaction) -> Task:
            task = self._leased(tx, task_id, "heartbeat", lease_id)
            # None given: the task's queue's default, read in this transaction so it is current.
            lease = (
                lease_seconds
                or self._settings(tx, task.queue).lease_seconds
                or self.policy.lease_seconds
            )
            tx.execute(
                "UPDATE tasks SET lease_expires_at = ? WHERE id = ?", (tx.now + lease, task_id)
            )
            return self._must_get(tx, task_id)

        return self._run(apply)

    def complete(
        self, task_id: str, result: bytes | None = None, lease_id: str | None = None
    ) -> Task:
        def apply(tx: _Transaction) -> Task:
            task = self._known(tx, task_id)
            if repeats_closing("complete", task, lease_id):
                return task  # the first result stands
            _check_lease(task, "complete", lease_id)
            worker = tx.let_go(task, Happened.COMPLETED)
            # `closed_lease`: a repeat of a fenced call is recognised by it (None when unfenced:
            # its repeat cannot be told from a stray call). Likewise in `fail`.
            tx.execute(
                "UPDATE tasks SET closed_lease = ?, result = ? WHERE id = ?",
                (lease_id, result, task_id),
            )
            control.end_turn(tx, task)
            entry = HistoryEntry(tx.now, Happened.COMPLETED, task.lease_id, worker)
            self._finish(tx, task, TaskStatus.COMPLETED, Event.COMPLETED, entry=entry)
            self._slot_freed(tx, task.queue)
            if task.extras is not None and task.extras.dependents:
                for child_id, hold in workflows.released(tx, task):
                    entry = HistoryEntry(tx.now, Happened.RELEASED)
                    self._schedule_or_append(tx, self._must_get(tx, child_id), hold, entry)
            return self._must_get(tx, task_id)

        return self._run(apply)

    def fail(
        self,
        task_id: str,
        error: str | None = None,
        retry: bool = True,
        lease_id: str | None = None,
        retry_after: float | None = None,
    ) -> Task:
        def apply(tx: _Transaction) -> Task:
            task = self._known(tx, task_id)
            if repeats_closing("fail", task, lease_id):
                return task  # no second attempt counted, no second backoff
            _check_lease(task, "fail", lease_id)
            queue, ended = task.queue, task.lease_id
            worker = tx.let_go(task, Happened.FAILED)
            tx.execute(
                "UPDATE tasks SET closed_lease = ?, lease_id = NULL, lease_expires_at = NULL, "
                "error = ?, started_at = NULL WHERE id = ?",
                (lease_id, error, task_id),
            )
            task.error = error
            if _expired(task, tx.now):
                self._expire(tx, task)  # never delivered again after its expiry
            elif retry and task.attempts < task.max_attempts:
                backoff = self.policy.backoff(task.attempts, task.backoff, retry_after)
                entry = HistoryEntry(tx.now, Happened.FAILED, ended, worker, error)
                self._schedule_or_append(tx, task, backoff, entry)
            else:
                self._dead(tx, task, ended, worker)
            self._slot_freed(tx, queue)
            return self._must_get(tx, task_id)

        return self._run(apply)

    def progress(self, task_id: str, value: bytes, lease_id: str | None = None) -> Task:
        def apply(tx: _Transaction) -> Task:
            self._leased(tx, task_id, "progress", lease_id)
            tx.execute("UPDATE tasks SET progress = ? WHERE id = ?", (value, task_id))
            return self._must_get(tx, task_id)

        return self._run(apply)

    def release(self, task_id: str, lease_id: str | None = None) -> Task:
        def apply(tx: _Transaction) -> Task:
            task = self._leased(tx, task_id, "release", lease_id)
            tx.let_go(task, None)  # a consumer giving a task back records nothing else
            if _expired(task, tx.now):
                self._expire(tx, task)
            else:
                self._put_back(tx, task)
            self._slot_freed(tx, task.queue)
            return self._must_get(tx, task_id)

        return self._run(apply)

    def retry(self, task_id: str) -> Task:
        def apply(tx: _Transaction) -> Task:
            task = self._known(tx, task_id)
            if task.status is not TaskStatus.FAILED:
                raise not_failed(task_id, task.status.value)
            self._revive(tx, task)
            return self._must_get(tx, task_id)

        return self._run(apply)

    def retry_failed(self, queue: str, limit: int) -> int:
        # One transaction (one fsync) for the whole round, not one per task.
        def apply(tx: _Transaction) -> int:
            rows = tx.execute(
                f"SELECT {COLUMNS} FROM tasks WHERE queue = ? AND status = 'failed' "
                f"AND status IN {LISTED_STATES} ORDER BY moved DESC LIMIT ?",
                (queue, limit),
            ).fetchall()
            for row in rows:
                self._revive(tx, _task(row))
            return len(rows)

        return self._run(apply)

    def _revive(self, tx: _Transaction, task: Task) -> None:
        """A failed task back at the tail, attempts reset. An operator's retry runs it however
        old it is: its expiry goes."""
        tx.execute(
            "UPDATE tasks SET attempts = 0, error = NULL, finished_at = NULL, "
            "forget_at = NULL, result = NULL, started_at = NULL, expires_at = NULL, "
            "progress = NULL WHERE id = ?",
            (task.id,),
        )
        self._schedule_or_append(tx, task, 0.0, HistoryEntry(tx.now, Happened.RETRIED))

    def configure(self, queue: str, changes: Mapping[str, object]) -> QueueSettings:
        def apply(tx: _Transaction) -> QueueSettings:
            before = self._settings(tx, queue)
            for name, value in changes.items():
                if value is None:
                    tx.execute(
                        "DELETE FROM queue_settings WHERE queue = ? AND name = ?", (queue, name)
                    )
                else:
                    tx.execute(
                        "INSERT OR REPLACE INTO queue_settings VALUES (?, ?, ?)",
                        (queue, name, orjson.dumps(QueueSettings.stored(value)).decode()),
                    )
            settings = self._settings(tx, queue)
            if before.rate_limit is not None and settings.rate_limit is None:
                control.forget_deliveries(tx, queue)
            if delivers_more(before, settings):
                # Resumed or loosened: its pending tasks may go now, so parked consumers wake.
                pending = self._counts(tx, queue)[TaskStatus.PENDING]
                if pending:
                    tx.ready[queue] = tx.ready.get(queue, 0) + pending
            return settings

        return self._run(apply)

    # -- schedules ----------------------------------------------------------------------------

    def put_schedule(self, schedule: Schedule) -> tuple[Schedule, bool]:
        def apply(tx: _Transaction) -> tuple[Schedule, bool]:
            before = schedule_rows.get(tx, schedule.name)
            if before is None and schedule_rows.count(tx) >= MAX_SCHEDULES:
                raise TooManySchedules(MAX_SCHEDULES)
            stored = replace(
                schedule.placed(tx.now),
                last_run_at=before and before.last_run_at,
                revision=(before.revision if before else 0) + 1,
            )
            schedule_rows.write(tx, stored)
            return stored, before is None

        return self._run(apply)

    def get_schedule(self, name: str) -> Schedule | None:
        return self._run(lambda tx: schedule_rows.get(tx, name))

    def schedules(self) -> list[Schedule]:
        return self._run(schedule_rows.listing)

    def delete_schedule(self, name: str) -> bool:
        return self._run(lambda tx: schedule_rows.delete(tx, name))

    def fire_due_schedules(self, limit: int = SCHEDULE_ROUND) -> Round:
        def apply(tx: _Transaction) -> Round:
            def enqueue(new_task: NewTask) -> str:
                if self.policy.limited:
                    self._check_room(tx, [new_task])
                task_id = ids.task_id()
                settings = self._settings(tx, new_task.queue)
                self._insert(tx, task_id, new_task, self._next_seq(tx), settings, None)
                self._count_event(tx, new_task.queue, Event.ENQUEUED)
                return task_id

            # The firing and the task it enqueues commit together, or neither does: a
            # server killed at any point never enqueues an occurrence twice.
            fired = []
            due = schedule_rows.due(tx, tx.now, limit)
            for schedule in due:
                after, outcome = fire(schedule, tx.now, enqueue)
                schedule_rows.advance(tx, after)
                if outcome is not None:
                    fired.append(outcome)
            next_due = schedule_rows.next_due(tx)
            return Round(fired, next_due is not None and next_due <= tx.now, next_due)

        return self._run(apply)

    def delete(self, task_id: str) -> None:
        def apply(tx: _Transaction) -> None:
            task = self._known(tx, task_id)
            if task.status is TaskStatus.PROCESSING:
                raise still_processing(task_id)
            self._remove(tx, task)
            self._retire_if_empty(tx, task.queue)

        self._run(apply)

    def purge(self, queue: str, status: TaskStatus, limit: int) -> int:
        if status not in PURGEABLE:
            raise InvalidTransition(f"tasks that are {status.value} cannot be purged")

        def apply(tx: _Transaction) -> int:
            if status is TaskStatus.PENDING:
                # Those waiting behind a group's head first: deleting a head first would only
                # hand its turn to a task about to be deleted too.
                rows = tx.execute(
                    f"SELECT {COLUMNS} FROM tasks WHERE queue = ? AND blocked = 1 "
                    "ORDER BY seq LIMIT ?",
                    (queue, limit),
                ).fetchall()
                rows += tx.execute(
                    f"SELECT {COLUMNS} FROM tasks WHERE queue = ? AND status = 'pending' "
                    "AND blocked IS NULL ORDER BY priority DESC, seq LIMIT ?",
                    (queue, limit - len(rows)),
                ).fetchall()
            else:
                rows = tx.execute(
                    f"SELECT {COLUMNS} FROM tasks WHERE queue = ? AND status = ? "
                    f"AND status IN {LISTED_STATES} ORDER BY moved DESC LIMIT ?",
                    (queue, status.value, limit),
                ).fetchall()
            for row in rows:
                self._remove(tx, _task(row))
            self._retire_if_empty(tx, queue)
            return len(rows)

        return self._run(apply)

    def reap(self) -> None:
        self._run(lambda _tx: None)  # every group starts by reaping

    # -- reads ------------------------------------------------------------------------------

    def get(self, task_id: str) -> Task | None:
        return self._run(lambda tx: self._get(tx, task_id))

    def view(
        self,
        limit: int,
        offset: int = 0,
        queue: str = DEFAULT_QUEUE,
        status: TaskStatus = TaskStatus.PENDING,
    ) -> tuple[list[Task], int]:
        # Each query walks one partial index from its start: SQLite uses a partial index only
        # when the query repeats the index's own condition, hence the literal terms.
        def apply(tx: _Transaction) -> tuple[list[Task], int]:
            if status is TaskStatus.PENDING:
                rows = self._pending_page(tx, queue, limit, offset)
            else:
                rows = tx.execute(
                    f"SELECT {COLUMNS} FROM tasks WHERE queue = ? AND status = ? "
                    f"AND status IN {LISTED_STATES} ORDER BY moved DESC LIMIT ? OFFSET ?",
                    (queue, status.value, limit, offset),
                ).fetchall()
            total = self._counts(tx, queue)[status]
            return [_task(row) for row in rows], total

        return self._run(apply)

    def _pending_page(
        self, tx: _Transaction, queue: str, limit: int, offset: int
    ) -> list[Sequence[Any]]:
        """Pending tasks in dequeue order, then those waiting behind their group's head."""
        rows = tx.execute(
            f"SELECT {COLUMNS} FROM tasks WHERE queue = ? AND status = 'pending' "
            "AND blocked IS NULL ORDER BY priority DESC, seq LIMIT ? OFFSET ?",
            (queue, limit, offset),
        ).fetchall()
        if len(rows) == limit:
            return rows
        if rows:
            skip = 0  # the page reached the end of the deliverable ones
        else:
            deliverable = tx.execute(
                "SELECT count(*) FROM tasks WHERE queue = ? AND status = 'pending' "
                "AND blocked IS NULL",
                (queue,),
            ).fetchone()[0]
            skip = max(offset - deliverable, 0)
        return (
            rows
            + tx.execute(
                f"SELECT {COLUMNS} FROM tasks WHERE queue = ? AND blocked = 1 "
                "ORDER BY seq LIMIT ? OFFSET ?",
                (queue, limit - len(rows), skip),
            ).fetchall()
        )

    def stats(self, queue: str | None = None) -> dict[TaskStatus, int]:
        return self._run(lambda tx: self._counts(tx, queue))

    def queues(self) -> dict[str, dict[TaskStatus, int]]:
        def apply(tx: _Transaction) -> dict[str, dict[TaskStatus, int]]:
            listing: dict[str, dict[TaskStatus, int]] = {}
            rows = tx.execute("SELECT queue, status, n FROM counts")
            for queue, status, n in rows:
                listing.setdefault(queue, dict.fromkeys(TaskStatus, 0))[TaskStatus(status)] = n
            configured = {row[0] for row in tx.execute("SELECT DISTINCT queue FROM queue_settings")}
            for queue in configured:
                listing.setdefault(queue, dict.fromkeys(TaskStatus, 0))
            # A queue is listed while it holds tasks or has a setting, as in every store.
            return {
                name: counts
                for name, counts in sorted(listing.items())
                if name in configured or any(counts.values())
            }

        return self._run(apply)

    def queue_settings(self, queue: str) -> QueueSettings:
        return self._run(lambda tx: self._settings(tx, queue))

    def configured_queues(self) -> dict[str, QueueSettings]:
        def apply(tx: _Transaction) -> dict[str, QueueSettings]:
            values: dict[str, dict[str, object]] = {}
            rows = tx.execute("SELECT queue, name, value FROM queue_settings ORDER BY queue")
            for queue, name, value in rows:
                values.setdefault(queue, {})[name] = orjson.loads(value)
            return {queue: QueueSettings.from_stored(named) for queue, named in values.items()}

        return self._run(apply)

    def totals(self) -> dict[str, dict[Event, int]]:
        def apply(tx: _Transaction) -> dict[str, dict[Event, int]]:
            totals: dict[str, dict[Event, int]] = {}
            for queue, event, n in tx.execute("SELECT queue, event, n FROM events"):
                totals.setdefault(queue, dict.fromkeys(Event, 0))[Event(event)] = n
            return totals

        return self._run(apply)

    def seconds_to_next_deadline(self) -> float | None:
        deadline = self._run(
            lambda tx: tx.execute(
                "SELECT min(d) FROM ("
                " SELECT min(lease_expires_at) AS d FROM tasks WHERE status = 'processing'"
                " UNION ALL"
                " SELECT min(available_at) FROM tasks WHERE status = 'scheduled'"
                " UNION ALL"
                " SELECT min(at) FROM wakeups)"
            ).fetchone()[0]
        )
        return None if deadline is None else deadline - self._clock.time()

    def add_ready_listener(self, listener: ReadyListener) -> None:
        with self._lock:
            self._listeners = [*self._listeners, listener]

    def add_finished_listener(self, listener: FinishedListener) -> None:
        with self._lock:
            self._finished_listeners = [*self._finished_listeners, listener]

    def saw_worker(self, worker_id: str) -> None:
        with self._workers_lock:
            self._workers.seen(worker_id, self._clock.time())

    def workers(self) -> list[WorkerInfo]:
        self.reap()  # a lease that ran out lets its worker go first
        with self._workers_lock:
            return self._workers.listing(self._clock.time())

    @property
    def event_feed(self) -> EventFeed:
        return self._feed

    def check(self) -> None:
        """Update a row and roll it back: a database SQLite can open but not write (read-only,
        or locked by another process for good) is refused now, not at the first enqueue.
        Taking the write lock alone is not enough: a read-only connection gets it too."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute("UPDATE sequence SET next = next WHERE id = 0")
            except sqlite3.Error as error:
                raise StoreUnavailable(error) from error
            finally:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")

    def close(self) -> None:
        self._writer.close()
        with self._lock:
            self._db.close()

    @property
    def commits(self) -> int:
        """Transactions committed since the store opened (each one fsync with sync=full)."""
        return self._writer.commits

    # -- internals ----------------------------------------------------------------------------

    def _run(self, apply: Callable[[_Transaction], T]) -> T:
        """Run `apply` in the writer's next group and wait until that group has committed;
        then listeners hear of the tasks it made ready.

        A failing disk or database (locked, unreadable, full, I/O errors) raises
        `StoreUnavailable` when it fails before the commit (the group's transaction is rolled
        back) and `OutcomeUnknown` when the commit itself fails: it may or may not be on disk.
        Any other exception `apply` raises undoes its own changes only (see `group_commit`)."""
        tx: _Transaction | None = None

        def work() -> T:
            nonlocal tx
            # The clock is read in the writer, so timestamps follow the order of operations.
            tx = _Transaction(self._db, self._clock.time(), self._feed.on)
            result = apply(tx)
            self._done.append(tx)  # it succeeded: its effects apply if the group commits
            return result

        operation = self._writer.run(work)
        # What the group's reaping made ready (or finished) is committed even when this
        # operation failed.
        opened: _Transaction | None = operation.opened
        ready: dict[str, int] = opened.ready if opened is not None else {}
        finished: list[str] = opened.finished if opened is not None else []
        if operation.error is None and tx is not None:
            for queue, count in tx.ready.items():
                ready[queue] = ready.get(queue, 0) + count
            finished += tx.finished
        self._notify(ready)
        self._notify_finished(finished)
        if self._feed.on:
            self._feed.flush()
        if operation.error is not None:
            raise operation.error
        return operation.result  # type: ignore[return-value]

    def _open_group(self) -> _Transaction:
        """Each group's first step, with the group's own clock reading: apply what is due.
        Returns its transaction, whose tasks made ready or finished the group's first caller
        announces."""
        tx = _Transaction(self._db, self._clock.time(), self._feed.on)
        self._done = [tx]  # what an earlier group that did not commit left goes
        self._reap(tx)
        return tx

    def _committed(self) -> None:
        """The writer's group committed (the lock held): the workers and the feed hear what
        its operations did, in their order."""
        done, self._done = self._done, []
        workers, feed = self._workers, self._feed
        for tx in done:
            if tx.workers:
                with self._workers_lock:
                    for worker, task_id, outcome in tx.workers:
                        if outcome is _DELIVERED:
                            workers.took(worker, task_id, tx.now)
                        else:
                            workers.let_go(worker, task_id, outcome)
            for task, entry in tx.noted:
                feed.record(task, entry)

    def _notify(self, ready: dict[str, int]) -> None:
        # On the caller's thread, never the writer's: a listener may call the store.
        for queue, count in ready.items():
            for listener in self._listeners:
                listener(queue, count)

    def _notify_finished(self, finished: list[str]) -> None:
        for task_id in finished:
            for listener in self._finished_listeners:
                listener(task_id)

    def _reap(self, tx: _Transaction) -> None:
        """Apply what is due, in this order: expired leases, due scheduled tasks, expiries,
        opened rate windows, retention, then idempotency keys."""
        expired = tx.execute(
            f"SELECT {COLUMNS} FROM tasks WHERE status = 'processing' AND lease_expires_at <= ?",
            (tx.now,),
        ).fetchall()
        for task in map(_task, expired):
            queue, ended = task.queue, task.lease_id  # a dead-lettered task changes queue
            worker = tx.let_go(task, None)
            entry = HistoryEntry(tx.now, Happened.LEASE_EXPIRED, ended, worker)
            self._count_event(tx, queue, Event.LEASE_EXPIRED)
            if _expired(task, tx.now):
                self._clear_lease(tx, task.id, entry)
                self._expire(tx, task)
            elif task.attempts >= task.max_attempts:
                task.error = "lease expired"
                _change(
                    tx,
                    task.id,
                    "lease_id = NULL, lease_expires_at = NULL, error = ?",
                    (task.error,),
                    entry,
                )
                self._dead(tx, task, ended, worker)
            else:
                self._put_back(tx, task, entry)
            self._slot_freed(tx, queue)
        due = tx.execute(
            f"SELECT {COLUMNS} FROM tasks WHERE status = 'scheduled' AND available_at <= ? "
            "ORDER BY available_at, seq",
            (tx.now,),
        ).fetchall()
        for task in map(_task, due):
            self._append(tx, task)
        # A processing task runs on: it expires when its lease ends (see `_expired`).
        past = tx.execute(
            f"SELECT {COLUMNS} FROM tasks WHERE status IN ('pending', 'scheduled', 'waiting') "
            "AND expires_at IS NOT NULL AND expires_at <= ?",
            (tx.now,),
        ).fetchall()
        for task in map(_task, past):
            current = self._get(tx, task.id)  # an earlier one's failure may have failed it
            if current is not None and current.status is task.status:
                self._expire(tx, current)
        for queue in control.windows_opened(tx):
            rate = self._settings(tx, queue).rate_limit
            pending = self._counts(tx, queue)[TaskStatus.PENDING]
            if rate is not None and pending:
                tx.ready[queue] = tx.ready.get(queue, 0) + min(pending, rate.tasks)
        forgotten = tx.execute(
            "DELETE FROM tasks WHERE status IN ('completed', 'failed') AND forget_at <= ?",
            (tx.now,),
        ).rowcount
        if forgotten:
            self._retire_empty_queues(tx)
        # A key lives at least as long as its task, so a retry can never create a duplicate:
        # one whose task still exists is looked at again a retention period later.
        tx.execute(
            "UPDATE idempotency SET forget_at = ? WHERE forget_at <= ? "
            "AND task_id IN (SELECT id FROM tasks)",
            (tx.now + self.policy.retention_seconds, tx.now),
        )
        tx.execute("DELETE FROM idempotency WHERE forget_at <= ?", (tx.now,))

    def _insert(  # noqa: PLR0917 - one row's parts, each a column
        self,
        tx: _Transaction,
        task_id: str,
        new_task: NewTask,
        seq: int,
        settings: QueueSettings,
        after: tuple[str, ...] | None,
    ) -> Task:
        """Write a new task and return it, built from the very row written (with the types
        SQLite gives back), so that it need not be read again. Its queue's `settings` give
        what the task does not: its attempts, backoff base and expiry."""
        attempts = new_task.max_attempts or settings.max_attempts or self.policy.max_attempts
        expires_in = new_task.expires_in or settings.ttl_seconds
        expires_at = float(tx.now + expires_in) if expires_in else None
        status, blocked, moved = TaskStatus.PENDING, None, None
        waiting_on = hold = None
        if after:
            workflows.link(tx, task_id, after)
            waiting_on = workflows.open_parents(tx, after)
            hold = float(new_task.delay)
        stored_history = None  # only enqueued: see `sqlite_history`
        if waiting_on:
            status, moved = TaskStatus.WAITING, seq
            stored_history = history.encode((HistoryEntry(float(tx.now), Happened.WAITING),))
        elif new_task.delay > 0:
            status, moved = TaskStatus.SCHEDULED, seq
        row = (
            *(task_id, new_task.queue, bytes(new_task.payload), status.value),
            *(int(new_task.priority), 0, int(attempts)),
            *(float(tx.now), float(tx.now + new_task.delay)),
            *(None, None, None, None, None, None, seq, None, None),
            *(new_task.group, expires_at, None, settings.retry_backoff, None, None),
            *(workflows.encode(after), None, waiting_on, hold),
            *(new_task.schedule, new_task.fire_time, stored_history),
        )
        task = _task(row)
        if status is TaskStatus.PENDING and task.group is not None:
            blocked = None if control.takes_turn(tx, task) else 1
        row = (*row[:22], blocked, *row[23:])
        tx.execute(
            f"INSERT INTO tasks ({COLUMNS}, moved) VALUES ({', '.join('?' * (len(row) + 1))})",
            (*row, moved),
        )
        if status is TaskStatus.PENDING and blocked is None:
            tx.became_ready(new_task.queue)
        tx.note(task, HistoryEntry(tx.now, Happened.ENQUEUED))
        if waiting_on:
            tx.note(task, HistoryEntry(tx.now, Happened.WAITING))
        return task

    def _check_room(self, tx: _Transaction, created: Sequence[NewTask]) -> None:
        def waiting(queue: str) -> int:
            counts = self._counts(tx, queue)
            return counts[TaskStatus.PENDING] + counts[TaskStatus.SCHEDULED]

        def held() -> int:
            return tx.execute("SELECT coalesce(sum(n), 0) FROM counts").fetchone()[0]

        def queues_in_use() -> set[str]:
            rows = tx.execute("SELECT queue FROM counts GROUP BY queue HAVING sum(n) > 0")
            return {row[0] for row in rows}

        adding = Counter(new_task.queue for new_task in created)
        self.policy.check_room(adding, waiting, held, queues_in_use)

    def _match_keys(self, tx: _Transaction, new_tasks: Sequence[NewTask]) -> dict[str, str]:
        seen: dict[str, bytes] = {}
        replays: dict[str, str] = {}
        for new_task in new_tasks:
            key = new_task.idempotency_key
            if not key:
                continue
            row = tx.execute(
                "SELECT task_id, fingerprint FROM idempotency WHERE key = ?", (key,)
            ).fetchone()
            fingerprint = row[1] if row else seen.get(key)
            if fingerprint is not None and fingerprint != new_task.fingerprint:
                raise key_conflict(key)
            seen[key] = new_task.fingerprint
            if row:
                replays[key] = row[0]
        return replays

    def _schedule_or_append(
        self, tx: _Transaction, task: Task, delay: float, entry: HistoryEntry | None = None
    ) -> None:
        """Wait `delay` seconds as scheduled, or join the tail now. `entry`, when given, is the
        change this stands for: the same UPDATE records it (as in `_append`, `_put_back`,
        `_finish` and `_clear_lease`)."""
        if delay <= 0:
            self._append(tx, task, entry)
            return
        _change(
            tx,
            task.id,
            "status = 'scheduled', available_at = ?, moved = ?",
            (tx.now + delay, self._next_seq(tx)),
            entry,
        )

    def _append(self, tx: _Transaction, task: Task, entry: HistoryEntry | None = None) -> None:
        """Join the tail of the task's queue and priority, or of its group when it is not the
        group's turn (it becomes deliverable when it is)."""
        waits = task.group is not None and not control.takes_turn(tx, task)
        _change(
            tx,
            task.id,
            "status = 'pending', available_at = ?, seq = ?, blocked = ?",
            (tx.now, self._next_seq(tx), 1 if waits else None),
            entry,
        )
        if not waits:
            tx.became_ready(task.queue)

    def _put_back(self, tx: _Transaction, task: Task, entry: HistoryEntry | None = None) -> None:
        """Back to its original place: its seq is unchanged, so the order index puts it there."""
        _change(
            tx,
            task.id,
            "status = 'pending', started_at = NULL, lease_id = NULL, lease_expires_at = NULL",
            (),
            entry,
        )
        tx.became_ready(task.queue)

    def _finish(
        self,
        tx: _Transaction,
        task: Task,
        status: TaskStatus,
        event: Event,
        *,
        cascade: bool = True,
        entry: HistoryEntry | None = None,
    ) -> None:
        _change(
            tx,
            task.id,
            "status = ?, finished_at = ?, forget_at = ?, moved = ?, blocked = NULL, "
            "lease_id = NULL, lease_expires_at = NULL",
            (status.value, tx.now, tx.now + self.policy.retention_seconds, self._next_seq(tx)),
            entry,
        )
        self._count_event(tx, task.queue, event)
        tx.finished.append(task.id)
        if cascade and status is TaskStatus.FAILED and task.extras and task.extras.dependents:
            # Failed for good: whatever waits for it never runs.
            self._fail_dependents(tx, task, "failed")

    def _expire(self, tx: _Transaction, task: Task) -> None:
        """A task past its expiry (pending, scheduled, or just off its lease) becomes failed and
        is never delivered, nor dead-lettered."""
        control.end_turn(tx, task)
        tx.execute(
            "UPDATE tasks SET error = ?, started_at = NULL WHERE id = ?", (EXPIRED_ERROR, task.id)
        )
        entry = HistoryEntry(tx.now, Happened.EXPIRED, error=EXPIRED_ERROR)
        self._finish(tx, task, TaskStatus.FAILED, Event.EXPIRED, entry=entry)

    def _dead(self, tx: _Transaction, task: Task, lease_id: str | None, worker: str | None) -> None:
        """A processing task that failed for good (under `lease_id`, delivered to `worker`,
        with `task.error`): to its queue's dead-letter queue, if it has one, else `failed`."""
        row = tx.execute(
            "SELECT value FROM queue_settings WHERE queue = ? AND name = 'dead_letter_queue'",
            (task.queue,),
        ).fetchone()
        control.end_turn(tx, task)
        if row is None:
            entry = HistoryEntry(tx.now, Happened.DEAD, lease_id, worker, task.error)
            self._finish(tx, task, TaskStatus.FAILED, Event.FAILED, entry=entry)
            return
        # Moved, keeping its id and error: the count trigger moves its count between queues.
        source, task.queue = task.queue, orjson.loads(row[0])
        self._count_event(tx, source, Event.DEAD_LETTERED)
        tx.execute(
            "UPDATE tasks SET queue = ?, attempts = 0, dead_lettered_from = ?, "
            "started_at = NULL WHERE id = ?",
            (task.queue, source, task.id),
        )
        entry = HistoryEntry(tx.now, Happened.DEAD_LETTERED, lease_id, worker, task.error)
        self._append(tx, task, entry)
        self._retire_if_empty(tx, source)

    def _slot_freed(self, tx: _Transaction, queue: str) -> None:
        """A task of `queue` stopped processing: under a concurrency cap, a waiter may now
        take the next one."""
        capped = tx.execute(
            "SELECT 1 FROM queue_settings WHERE queue = ? AND name = 'max_processing'", (queue,)
        ).fetchone()
        if capped and queue not in tx.ready and self._counts(tx, queue)[TaskStatus.PENDING]:
            tx.became_ready(queue)

    def _remove(self, tx: _Transaction, task: Task) -> None:
        """Delete a task that is not processing (its group moves on if it was the head; what
        waits for it fails)."""
        control.end_turn(tx, task)
        if task.extras is not None and task.extras.dependents:
            self._fail_dependents(tx, task, "deleted")
        tx.execute("DELETE FROM tasks WHERE id = ?", (task.id,))
        tx.finished.append(task.id)  # a waiter on it learns it is gone
        tx.note(task, HistoryEntry(tx.now, Happened.DELETED))  # the feed's only: it is gone

    def _fail_dependents(self, tx: _Transaction, parent: Task, reason: str) -> None:
        """A parent failed or was deleted (`reason`): its waiting dependents fail, naming it,
        and theirs in turn, naming them, down the chain."""
        stack = [(parent, reason)]
        while stack:
            task, why = stack.pop()
            if task.extras is None or not task.extras.dependents:
                continue
            error = parent_deleted_error if why == "deleted" else parent_failed_error
            for child_id in task.extras.dependents:
                child = self._get(tx, child_id)
                if child is None or child.status is not TaskStatus.WAITING:
                    continue
                child.error = error(task.id)
                tx.execute("UPDATE tasks SET error = ? WHERE id = ?", (child.error, child_id))
                entry = HistoryEntry(tx.now, Happened.DEAD, error=child.error)
                self._finish(tx, child, TaskStatus.FAILED, Event.FAILED, cascade=False, entry=entry)
                stack.append((child, "failed"))

    def _retire_if_empty(self, tx: _Transaction, queue: str) -> None:
        """`_retire_empty_queues` for the one queue an operation may have emptied."""
        row = tx.execute("SELECT sum(n) FROM counts WHERE queue = ?", (queue,)).fetchone()
        if row[0] == 0:
            self._retire_empty_queues(tx)

    def _retire_empty_queues(self, tx: _Transaction) -> None:
        """Fold the event totals of queues left without a task into `RETIRED` and drop their
        rows, so events and counts stay bounded by the queues in use. Settings stay: only
        `configure` clears them."""
        empty = tx.execute("SELECT queue FROM counts GROUP BY queue HAVING sum(n) = 0").fetchall()
        for (queue,) in empty:
            tx.execute(
                "INSERT INTO events SELECT ?, event, n FROM events WHERE queue = ? "
                "ON CONFLICT (queue, event) DO UPDATE SET n = n + excluded.n",
                (RETIRED, queue),
            )
            tx.execute("DELETE FROM events WHERE queue = ?", (queue,))
            tx.execute("DELETE FROM counts WHERE queue = ?", (queue,))

    def _count_event(self, tx: _Transaction, queue: str, event: Event, count: int = 1) -> None:
        tx.execute(
            "INSERT INTO events VALUES (?, ?, ?) "
            "ON CONFLICT (queue, event) DO UPDATE SET n = n + excluded.n",
            (queue, event.value, count),
        )

    def _clear_lease(
        self, tx: _Transaction, task_id: str, entry: HistoryEntry | None = None
    ) -> None:
        _change(tx, task_id, "lease_id = NULL, lease_expires_at = NULL", (), entry)

    def _next_seq(self, tx: _Transaction) -> int:
        return tx.execute("UPDATE sequence SET next = next + 1 RETURNING next - 1").fetchone()[0]

    def _get(self, tx: _Transaction, task_id: str) -> Task | None:
        row = tx.execute(f"SELECT {COLUMNS} FROM tasks WHERE id = ?", (task_id,)).fetchone()
        return None if row is None else _task(row)

    def _must_get(self, tx: _Transaction, task_id: str) -> Task:
        task = self._get(tx, task_id)
        assert task is not None
        return task

    def _known(self, tx: _Transaction, task_id: str) -> Task:
        task = self._get(tx, task_id)
        if task is None:
            raise TaskNotFound(task_id)
        return task

    def _leased(self, tx: _Transaction, task_id: str, action: str, lease_id: str | None) -> Task:
        task = self._known(tx, task_id)
        _check_lease(task, action, lease_id)
        return task

    def _settings(self, tx: _Transaction, queue: str) -> QueueSettings:
        rows = tx.execute("SELECT name, value FROM queue_settings WHERE queue = ?", (queue,))
        return QueueSettings.from_stored({name: orjson.loads(value) for name, value in rows})

    def _counts(self, tx: _Transaction, queue: str | None) -> dict[TaskStatus, int]:
        counts = dict.fromkeys(TaskStatus, 0)
        if queue is None:
            rows = tx.execute("SELECT status, sum(n) FROM counts GROUP BY status")
        else:
            rows = tx.execute("SELECT status, n FROM counts WHERE queue = ?", (queue,))
        for status, n in rows:
            counts[TaskStatus(status)] = n
        return counts


class _Transaction:
    """The connection plus the operation's time, the tasks it made ready, per queue, and what
    it did to the workers and (when `feed`: the feed was on) for the feed."""

    __slots__ = ("_db", "feed", "finished", "noted", "now", "ready", "workers")

    def __init__(self, db: sqlite3.Connection, now: float, feed: bool) -> None:
        self._db = db
        self.now = now
        self.feed = feed
        self.ready: dict[str, int] = {}
        self.finished: list[str] = []  # tasks completed, failed or deleted
        self.noted: list[tuple[Task, HistoryEntry]] = []  # for the feed, while it is on
        # (worker, task id, outcome): a delivery to the worker, or its task's end.
        self.workers: list[tuple[str, str, str | None]] = []

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self._db.execute(sql, parameters)

    def became_ready(self, queue: str) -> None:
        self.ready[queue] = self.ready.get(queue, 0) + 1

    def note(self, task: Task, entry: HistoryEntry) -> None:
        """A change for the feed (the task as it is after it), while the feed is on."""
        if self.feed:
            self.noted.append((task, entry))

    def let_go(self, task: Task, outcome: str | None) -> str | None:
        """A processing task stops processing (`completed`, `failed`, or None for neither):
        the worker it was delivered to, if it named one, holds it no more. Returns it."""
        worker = holder(task)
        if worker is not None:
            self.workers.append((worker, task.id, outcome))
        return worker


def _change(
    tx: _Transaction,
    task_id: str,
    assignments: str,
    parameters: Sequence[Any],
    entry: HistoryEntry | None,
) -> None:
    """UPDATE one task's row; with `entry`, the same statement appends it to the task's
    history (and, while the feed is on, gives back the row the entry's event shows)."""
    if entry is None:
        tx.execute(f"UPDATE tasks SET {assignments} WHERE id = ?", (*parameters, task_id))
    elif not tx.feed:
        tx.execute(
            f"UPDATE tasks SET {assignments}, {history.APPEND} WHERE id = ?",
            (*parameters, *entry, task_id),
        )
    else:
        row = tx.execute(
            f"UPDATE tasks SET {assignments}, {history.APPEND} WHERE id = ? RETURNING {COLUMNS}",
            (*parameters, *entry, task_id),
        ).fetchone()
        tx.noted.append((_task(row), entry))


def _check_lease(task: Task, action: str, lease_id: str | None) -> None:
    """Refuse `action` unless the task is processing under `lease_id` (when given)."""
    if lease_id is not None and task.lease_id != lease_id:
        raise lease_lost(action, task.id, lease_id, task.status.value)
    if task.status is not TaskStatus.PROCESSING:
        raise not_processing(action, task.id, task.status.value)


def _expired(task: Task, now: float) -> bool:
    return task.expires_at is not None and task.expires_at <= now


def _task(row: Sequence[Any]) -> Task:
    (task_id, queue, payload, status, priority, attempts, max_attempts, created_at,
     available_at, lease_id, lease_expires_at, started_at, finished_at, result, error,
     seq, forget_at, closed_lease, group, expires_at, dead_lettered_from, backoff,
     _blocked, progress, parents, dependents, waiting_on, hold, schedule,
     fire_time, stored_history) = row  # fmt: skip
    task = Task(task_id, payload, created_at, max_attempts, queue=queue, priority=priority)
    task.status = TaskStatus(status)
    task.attempts = attempts
    task.available_at = available_at
    task.lease_id = lease_id
    task.lease_expires_at = lease_expires_at
    task.started_at = started_at
    task.finished_at = finished_at
    task.result = result
    task.error = error
    task.seq = seq
    task.forget_at = forget_at
    task.closed_lease = closed_lease
    task.group = group
    task.expires_at = expires_at
    task.dead_lettered_from = dead_lettered_from
    task.backoff = backoff
    if parents is not None or dependents is not None:
        after = workflows.decode(parents)
        task.extras = Extras(
            after=tuple(after or ()),
            dependents=workflows.decode(dependents),
            waiting_on=waiting_on or 0,
            hold=hold or 0.0,
        )
    task.progress = progress
    task.schedule = schedule
    task.fire_time = fire_time
    if stored_history is not None:
        task.history = history.decode(stored_history)
    return task
