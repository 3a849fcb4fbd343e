"""Several `mlperf-controller serve --worker NAME` processes on one store: the broker shares the
fleet's messages among them (MQTT shared subscriptions), each writes what it hears, and one at a
time -- the holder of the lead -- dispatches, judges silence and expires leases. Mixed into
controller.store.Store (which supplies ``tx()``); every method is one short transaction."""

from __future__ import annotations

import time

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from controller.models import Lead, Worker

DISPATCH = "dispatch"


class WorkerRecords:
    """The lead and each worker's progress (see the module docstring)."""

    def take_lead(self, worker_id: str, ttl_s: float, now: float | None = None) -> bool:
        """Hold (or renew) the dispatcher's lead for ``ttl_s``; False while another worker
        holds it. The row is locked while judged, so two workers never both take it."""
        now = time.time() if now is None else now
        try:
            return self._take_lead(worker_id, ttl_s, now)
        except IntegrityError:                    # both made the row at once: judge again
            return self._take_lead(worker_id, ttl_s, now)

    def _take_lead(self, worker_id: str, ttl_s: float, now: float) -> bool:
        with self.tx() as s:
            row = s.get(Lead, DISPATCH, with_for_update=True)
            if row is None:
                s.add(Lead(role=DISPATCH, holder=worker_id, until=now + ttl_s))
                return True
            if row.holder != worker_id and row.until > now:
                return False
            row.holder, row.until = worker_id, now + ttl_s
            return True

    def drop_lead(self, worker_id: str) -> None:
        """A worker stopping hands the lead on at once rather than when it expires."""
        with self.tx() as s:
            row = s.get(Lead, DISPATCH, with_for_update=True)
            if row is not None and row.holder == worker_id:
                row.until = 0.0

    def lead_holder(self, now: float | None = None) -> str | None:
        now = time.time() if now is None else now
        with self.tx() as s:
            row = s.get(Lead, DISPATCH)
            return row.holder if row is not None and row.until > now else None

    def worker_heard(self, worker_id: str, heard_through: float | None,
                     now: float | None = None) -> None:
        """A worker is alive and has written what the fleet sent up to ``heard_through``."""
        now = time.time() if now is None else now
        try:
            self._worker_heard(worker_id, heard_through, now)
        except IntegrityError:
            self._worker_heard(worker_id, heard_through, now)

    def _worker_heard(self, worker_id: str, heard_through: float | None, now: float) -> None:
        with self.tx() as s:
            row = s.get(Worker, worker_id)
            if row is None:
                s.add(Worker(worker_id=worker_id, seen_at=now, heard_through=heard_through))
            else:
                row.seen_at, row.heard_through = now, heard_through

    def heard_through_all(self, alive_s: float, now: float | None = None) -> float | None:
        """What every live worker has written up to (the least of them): silence is judged
        against it. None while a live worker has not heard its first echo."""
        now = time.time() if now is None else now
        with self.tx() as s:
            rows = list(s.execute(select(Worker.heard_through).where(
                Worker.seen_at > now - alive_s)))
            if not rows or any(h is None for (h,) in rows):
                return None
            return min(h for (h,) in rows)

    def workers(self, alive_s: float, now: float | None = None) -> int:
        now = time.time() if now is None else now
        with self.tx() as s:
            return s.scalar(select(func.count()).select_from(Worker).where(
                Worker.seen_at > now - alive_s)) or 0
