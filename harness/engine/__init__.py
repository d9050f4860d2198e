"""The engine: what runs behind every command.

- ``run``: ``open_run`` and ``Run``, the results directory, store, run record, cache statistics
  and progress of one command.
- ``workspace``: cached sampling and PRM scoring of one (task, generator) through the store.
- ``context``: ``SearchContext``, what a search may use.
- ``plan``: ``prepare`` and ``run_eval``, an evaluation plan from components to tables.
- ``tables``: the result tables. Grading (answer, gold) pairs through the store is
  ``prmh.verdicts``, beside the engine with the rest of grading.
"""

from prmh.engine.context import SearchContext
from prmh.engine.plan import Prepared, prepare, run_eval
from prmh.engine.run import Run, command_config, open_run
from prmh.engine.workspace import CacheStats, Progress, Workspace, no_progress
from prmh.verdicts import grade_pairs

__all__ = [
    "CacheStats",
    "Prepared",
    "Progress",
    "Run",
    "SearchContext",
    "Workspace",
    "command_config",
    "grade_pairs",
    "no_progress",
    "open_run",
    "prepare",
    "run_eval",
]
