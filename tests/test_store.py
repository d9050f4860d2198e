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
