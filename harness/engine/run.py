"""A run: what every command opens before it works, and what it leaves behind.

``open_run`` makes the results directory, saves a run record as "started", opens the store,
and yields a ``Run`` that owns them with the cache statistics and the progress callback. The
command's work builds workspaces from it (``Run.workspace``) and puts its numbers in
``Run.metrics``; on leaving, the record says "success", "error" (with the message) or
"interrupted", and the store is closed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prmh.engine.workspace import CacheStats, Progress, Workspace, no_progress
from prmh.errors import PrmhError
from prmh.records import RunRecord
from prmh.registry import Component
from prmh.store import Store, ensure_results_dir


class Run:
    """The results directory, store, run record, cache statistics and progress of one run."""

    def __init__(self, root: Path, record: RunRecord, store: Store, progress: Progress):
        self.root, self.record, self.store, self.progress = root, record, store, progress
        self.stats = CacheStats()

    @property
    def run_id(self) -> str:
        return self.record.run_id

    @property
    def metrics(self) -> dict[str, Any] | None:
        """What the record keeps as the run's numbers once it succeeds."""
        return self.record.data.get("metrics")

    @metrics.setter
    def metrics(self, value: dict[str, Any]) -> None:
        self.record.data["metrics"] = value

    def workspace(
        self, task: Component | None = None, generator: Component | None = None
    ) -> Workspace:
        """Cached sampling (with a task and generator) and PRM scoring through the store."""
        return Workspace(task, generator, self.store, self.run_id, self.stats, self.progress)


@contextlib.contextmanager
def open_run(
    config: dict[str, Any],
    results_dir: str | Path | None,
    argv: list[str],
    progress: Progress | None = None,
) -> Iterator[Run]:
    """A run of ``config`` (the record's configuration) in ``results_dir`` (else
    ``PRMH_RESULTS_DIR``, else ./prmh-results)."""
    root = ensure_results_dir(results_dir)
    record = RunRecord(root / "runs", config, argv)
    record.data["results_dir"] = str(root.resolve())
    record.save()
    store = None
    try:
        store = Store(root)
        yield Run(root, record, store, progress or no_progress)
    except KeyboardInterrupt:
        record.finish("interrupted", error="interrupted (Ctrl-C)")
        raise
    except PrmhError as e:
        record.finish("error", error=str(e))
        raise
    except Exception as e:
        record.finish("error", error=f"{type(e).__name__}: {e}")
        raise
    finally:
        if store is not None:
            store.close()
    record.finish("success", metrics=record.data.get("metrics"))


def command_config(command: str, options: dict[str, Any]) -> dict[str, Any]:
    """A command's options as a record's configuration (paths and tuples as JSON)."""

    def plain(value: Any) -> Any:
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return value

    return {"command": command, "options": {k: plain(v) for k, v in options.items()}}
