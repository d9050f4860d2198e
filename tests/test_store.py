"""The store: content keys, first write wins, transactions, clear errors."""

from __future__ import annotations

import os
import sqlite3

import pytest

from prmh.errors import PrmhError
from prmh.store import Store, content_key, ensure_results_dir


def test_content_key_ignores_dict_order_but_not_values():
    assert content_key({"a": 1, "b": [1, 2]}) == content_key({"b": [1, 2], "a": 1})
    assert content_key({"a": 1}) != content_key({"a": 2})
    assert content_key([1, 2]) != content_key([2, 1])


def test_put_get_and_first_value_wins(tmp_path):
    store = Store(tmp_path)
    store.put_many("score", {"k1": {"x": 1}, "k2": [1, 2]}, run_id="r1")
    store.put_many("score", {"k1": {"x": 99}}, run_id="r2")
    assert store.get_many("score", ["k1", "k2", "k3"]) == {"k1": {"x": 1}, "k2": [1, 2]}
    assert store.get_many("generation", ["k1"]) == {}
    (run,) = store.db.execute("SELECT run_id FROM entries WHERE key = 'k1'").fetchone()
    assert run == "r1"
    store.close()
    assert Store(tmp_path).count("score") == 2


def test_many_keys_cross_the_sqlite_variable_limit(tmp_path):
    store = Store(tmp_path)
    values = {f"k{i}": i for i in range(2500)}
    store.put_many("grade", values)
    assert store.get_many("grade", values) == values


def test_a_failed_transaction_leaves_nothing(tmp_path):
    store = Store(tmp_path)
    with pytest.raises(RuntimeError), store.transaction():
        store.db.execute("INSERT INTO entries VALUES ('grade', 'a', '1', NULL, 0)")
        raise RuntimeError("killed mid-batch")
    assert store.count() == 0


def test_not_a_store_is_a_clear_error(tmp_path):
    (tmp_path / "store.sqlite").write_text("this is not a database" * 100)
    with pytest.raises(PrmhError, match="not a prmh store"):
        Store(tmp_path)


def test_store_from_another_schema_version_is_refused(tmp_path):
    db = sqlite3.connect(tmp_path / "store.sqlite")
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    db.execute("INSERT INTO meta VALUES ('schema_version', '99')")
    db.commit()
    with pytest.raises(PrmhError, match="schema version 99"):
        Store(tmp_path)


def test_unwritable_results_dir(tmp_path, monkeypatch):
    # Permissions do not bind root (CI runs as root), so the access check is what is tested.
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(PrmhError, match=r"is not writable. Fix its permissions or choose"):
        ensure_results_dir(tmp_path / "results")


def test_results_dir_that_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(PrmhError, match=r"cannot create results directory .*--results-dir"):
        ensure_results_dir(tmp_path / "file")


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("generation", "not json {"),
        ("generation", "[1, 2]"),
        ("generation", '{"text": 5, "finished": true, "num_tokens": 1}'),
        ("score", '{"probs": "abc"}'),
        ("score", "null"),
        ("grade", '{"correct": "yes"}'),
        ("vote key", "42"),
        # nested deeper than json's decoder goes (a merged store from elsewhere): it raised
        # RecursionError, a traceback in every run that read the entry
        ("score", "[" * 100_000 + "]" * 100_000),
    ],
)
def test_a_damaged_entry_is_reported_and_computed_again(cli, kind, value):
    """Entries that pass SQLite's integrity check but are not what prmh wrote no longer block
    the results directory: a re-run that reads them (``--recompute``: a plain re-run reads the
    finished run back, not its entries) reports them, computes them again and gives the same
    table."""
    import json

    args = ["eval", "--limit", "5", "-n", "2", "--json"]
    first = cli(*args)
    assert first.exit_code == 0, first.output
    store = Store(cli.results_dir)
    (key,) = store.db.execute("SELECT key FROM entries WHERE kind = ? LIMIT 1", (kind,)).fetchone()
    store.db.execute("UPDATE entries SET value = ? WHERE kind = ? AND key = ?", (value, kind, key))
    store.close()
    again = cli(*args, "--recompute")
    assert again.exit_code == 0, again.output
    record = json.loads(again.output)
    assert record["metrics"]["damaged_entries"] == {kind: 1}
    assert record["metrics"]["cache"]["computed"][kind] == 1

    def accuracy(output):
        return [
            (c["mean"], c["low"], c["high"])
            for t in json.loads(output)["metrics"]["tables"]
            for r in t["rows"]
            for c in r["cells"]
        ]

    assert accuracy(again.output) == accuracy(first.output)
    shown = cli("eval", "--limit", "5", "-n", "2", "--recompute")
    assert shown.exit_code == 0 and "damaged entries" not in shown.output  # repaired for good


def test_a_full_disk_or_a_held_store_is_one_message(cli, tmp_path, monkeypatch):
    """SQLite's "database or disk is full" (SQLITE_FULL, reached here with ``PRAGMA
    max_page_count``, sqlite.org/pragma.html#pragma_max_page_count) and "database is locked"
    past the timeout were tracebacks from the middle of a run: each is one message naming the
    store, exit status 2, and what was stored before stays."""
    results = tmp_path / "r"
    assert cli("eval", "--world", "sim", "--limit", "2", "-n", "1", "--results-dir",
               str(results)).exit_code == 0  # fmt: skip
    store = Store(results)
    before = store.count()
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.close()
    opened = Store.__init__

    def nearly_full(self, root):
        opened(self, root)
        self.db.execute(f"PRAGMA max_page_count = {pages}")

    monkeypatch.setattr(Store, "__init__", nearly_full)
    full = cli("eval", "--world", "sim", "--limit", "40", "-n", "4", "--results-dir", str(results))
    assert full.exit_code == 2 and "Traceback" not in full.output, full.output
    assert "cannot be written (database or disk is full): free disk space" in full.output
    monkeypatch.undo()
    assert Store(results).count() >= before
    locked = Store(results)
    locked.db.execute("PRAGMA busy_timeout = 10")  # not the 60 s the store waits
    holder = sqlite3.connect(results / "store.sqlite", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process writing, past the timeout
    try:
        with pytest.raises(PrmhError, match="cannot be written \\(database is locked\\)"):
            locked.put_many("generation", {"k": 1})
    finally:
        holder.execute("ROLLBACK")
