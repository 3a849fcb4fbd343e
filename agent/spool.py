"""The agent's durable result spool (SQLite): a result stays here until the controller acks it,
so a broker restart, a cut network or an agent restart loses nothing."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from agent.protocol import JobResult, decode, encode


class Spool:
    """Results waiting for a ResultAck, keyed by their idempotency key ``result_id``."""

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

    def put(self, result: JobResult) -> None:
        """Store a result durably (before it is first published)."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO results (result_id, job_id, payload, spooled_at)"
                " VALUES (?, ?, ?, ?)", (result.result_id, result.job_id, encode(result),
                                         time.time()))

    def due(self, older_than_s: float = 0.0) -> list[JobResult]:
        """Unacknowledged results not sent within the last ``older_than_s`` seconds."""
        cutoff = time.time() - older_than_s
        with self._lock:
            rows = self._db.execute(
                "SELECT payload FROM results WHERE sent_at IS NULL OR sent_at <= ?"
                " ORDER BY spooled_at", (cutoff,)).fetchall()
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

    def close(self) -> None:
        with self._lock:
            self._db.close()
