"""The agent's durable state (SQLite): results waiting for the controller's ack, so a broker
restart, a cut network or an agent restart loses nothing; the ids of jobs already taken, so a
replayed assignment never runs twice; and the agent's boot counter, which orders its presence
messages across restarts."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from agent.envelope import decode, encode
from agent.protocol import JobResult

#: Job ids remembered (oldest forgotten first). A replay of an older one is still refused:
#: its envelope expired long before it could fall out of this window.
MAX_SEEN_JOBS = 10_000
#: An unacknowledged result waits ``older_than_s`` after its first send, twice that after its
#: second, ... up to this many times: a controller behind its fleet (10,000 results at once)
#: is not buried under copies of what it has not yet read. When the controller comes back
#: online everything waiting goes at once regardless (``due()``).
MAX_BACKOFF = 8


class Spool:
    """Results waiting for a ResultAck (keyed by their idempotency key ``result_id``), seen
    job ids and the boot counter."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")   # a spooled result must survive power loss
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS results ("
            " result_id TEXT PRIMARY KEY, job_id TEXT NOT NULL, payload BLOB NOT NULL,"
            " spooled_at REAL NOT NULL, sent_at REAL, sends INTEGER NOT NULL DEFAULT 0)")
        self._db.execute("CREATE TABLE IF NOT EXISTS seen_jobs ("
                         " job_id TEXT PRIMARY KEY, seen_at REAL NOT NULL)")
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")

    def put(self, result: JobResult) -> None:
        """Store a result durably (before it is first published)."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO results (result_id, job_id, payload, spooled_at)"
                " VALUES (?, ?, ?, ?)", (result.result_id, result.job_id, encode(result),
                                         time.time()))

    def due(self, older_than_s: float = 0.0) -> list[JobResult]:
        """Unacknowledged results not yet sent, or last sent longer ago than ``older_than_s``
        times 1, 2, 4, ... (doubling with each send, at most :data:`MAX_BACKOFF` times)."""
        now = time.time()
        with self._lock:
            rows = self._db.execute(
                "SELECT payload FROM results WHERE sent_at IS NULL OR sent_at <= ? - ? *"
                " MIN(1 << MAX(sends - 1, 0), ?) ORDER BY spooled_at",
                (now, older_than_s, MAX_BACKOFF)).fetchall()
        return [decode(JobResult, bytes(row[0]), "spool") for row in rows]

    def mark_sent(self, result_id: str) -> None:
        with self._lock:
            self._db.execute("UPDATE results SET sent_at = ?, sends = sends + 1"
                             " WHERE result_id = ?", (time.time(), result_id))

    def ack(self, result_id: str) -> bool:
        """Drop an acknowledged result; False if it was not (or no longer) spooled."""
        with self._lock:
            cur = self._db.execute("DELETE FROM results WHERE result_id = ?", (result_id,))
            return cur.rowcount > 0

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM results").fetchone()[0]

    # -- jobs taken --------------------------------------------------------------------------
    def take_job(self, job_id: str) -> bool:
        """Remember ``job_id``; False if it was taken before (a redelivery or a replay)."""
        with self._lock:
            cur = self._db.execute("INSERT OR IGNORE INTO seen_jobs VALUES (?, ?)",
                                   (job_id, time.time()))
            if cur.rowcount == 0:
                return False
            self._db.execute(
                "DELETE FROM seen_jobs WHERE job_id IN (SELECT job_id FROM seen_jobs"
                " ORDER BY seen_at DESC LIMIT -1 OFFSET ?)", (MAX_SEEN_JOBS,))
            return True

    def seen_jobs(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM seen_jobs").fetchone()[0]

    # -- boots -------------------------------------------------------------------------------
    def next_boot(self) -> int:
        """Count this start of the agent: presence is ordered by (boot, seq). A new spool
        starts from the unix time, so a device whose work folder was wiped (but whose key
        was kept) still counts up from where the controller last saw it."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'boot'").fetchone()
            boot = int(row[0]) + 1 if row else int(time.time())
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('boot', ?)", (str(boot),))
            return boot

    def close(self) -> None:
        with self._lock:
            self._db.close()
