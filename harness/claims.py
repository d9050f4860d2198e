"""Work claims: several prmh processes on one results directory split the work, never do it
twice (a paid API is asked once per sample), and take over what a crashed process claimed.

Before computing a unit (a run of samples, a solution's scores), a process claims it in the
store's ``claims`` table, in one ``BEGIN IMMEDIATE`` transaction, so two processes cannot both
win. A unit claimed by a live process is left to it and waited for; one whose owner is gone
(its process ended, or, on another host, its claim is older than ``STALE`` seconds) is taken
over. Claims are released once the unit's results are stored.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from typing import Any

from prmh.liveness import process_started
from prmh.store import Store

STALE = 600.0  # seconds before another host's claim counts as abandoned
POLL = 0.2


class Claims:
    """This process's claims in ``store``."""

    def __init__(self, store: Store, run_id: str):
        self.store = store
        store.db.execute(
            "CREATE TABLE IF NOT EXISTS claims (kind TEXT NOT NULL, unit TEXT NOT NULL, "
            "owner TEXT NOT NULL, claimed REAL, PRIMARY KEY (kind, unit))"
        )
        self.me = {
            "host": platform.node(),
            "pid": os.getpid(),
            "since": process_started(os.getpid()) or 0.0,
            "run_id": run_id,
        }
        self.owner = json.dumps(self.me, sort_keys=True)

    def _alive(self, owner: str, claimed: float) -> bool:
        try:
            them = json.loads(owner)
        except ValueError:
            return False
        if them.get("host") != self.me["host"]:
            return time.time() - claimed < STALE
        began = process_started(them.get("pid", -1))
        return began is not None and began <= them.get("since", 0.0) + 1.0

    def take(self, kind: str, units: Sequence[str]) -> list[str]:
        """Claim every unit that no live process holds; returns the units now this process's."""
        mine = []
        with self.store.transaction():
            for start in range(0, len(units), 500):
                chunk = list(units[start : start + 500])
                marks = ",".join("?" * len(chunk))
                held = {
                    unit: (owner, claimed)
                    for unit, owner, claimed in self.store.db.execute(
                        f"SELECT unit, owner, claimed FROM claims WHERE kind = ? AND unit IN "
                        f"({marks})",
                        (kind, *chunk),
                    )
                }
                free = [
                    u
                    for u in chunk
                    if u not in held or held[u][0] == self.owner or not self._alive(*held[u])
                ]
                now = time.time()
                self.store.db.executemany(
                    "INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?)",
                    [(kind, u, self.owner, now) for u in free],
                )
                mine += free
        return mine

    def release(self, kind: str, units: Sequence[str]) -> None:
        with self.store.transaction():
            self.store.db.executemany(
                "DELETE FROM claims WHERE kind = ? AND unit = ? AND owner = ?",
                [(kind, u, self.owner) for u in units],
            )

    def share(
        self,
        kind: str,
        units: dict[str, Any],
        done: Callable[[list[str]], set[str]],
        compute: Callable[[list[Any]], None],
        chunk: int,
    ) -> None:
        """Compute ``units`` (unit key -> work) together with the other processes on this
        store: claim up to ``chunk`` free units at a time, skip those ``done`` says are stored,
        ``compute`` the rest (which stores them), release; when every remaining unit is held
        by a live process, wait for ``done`` to report it (or for its claimant to die)."""
        left = dict(units)
        while left:
            mine = self._next(kind, list(left), chunk)
            if not mine:
                for unit in done(list(left)):
                    left.pop(unit)
                if left:
                    time.sleep(POLL)
                continue
            stored = done(mine)
            try:
                todo = [left[u] for u in mine if u not in stored]
                if todo:
                    compute(todo)
            finally:
                self.release(kind, mine)
            for unit in mine:
                left.pop(unit)

    def _next(self, kind: str, order: list[str], chunk: int) -> list[str]:
        """Claim the first ``chunk``-sized group of ``order`` with any free unit."""
        for start in range(0, len(order), chunk):
            got = self.take(kind, order[start : start + chunk])
            if got:
                return got
        return []
