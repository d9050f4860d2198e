"""Shards and merge: ``prmh eval --shard I/N`` in separate results directories, ``prmh merge``
adds them up, and the unsharded command on the merged directory computes nothing and prints the
table a single process prints (the measured seconds aside)."""

from __future__ import annotations

import hashlib
import json
import sqlite3

import pytest

ARGS = ["--search", "best-of-n", "--search", "beam", "--agg", "min", "-n", "4", "--limit", "16"]


def evaluate(cli, directory, *extra):
    result = cli("eval", *ARGS, "--results-dir", str(directory), *extra, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def without_seconds(tables):
    for table in tables:
        for row in table["rows"]:
            for cell in row["cells"]:
                cell.get("compute", {}).pop("wall_seconds", None)
    return tables


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_four_shards_merged_equal_one_run(cli, tmp_path):
    shards = [evaluate(cli, tmp_path / f"s{i}", "--shard", f"{i}/4") for i in range(4)]
    ids = [set(s["metrics"]["tables"][0]["problem_ids"]) for s in shards]
    assert [len(x) for x in ids] == [4, 4, 4, 4] and len(set().union(*ids)) == 16
    assert [s["config"]["shard"] for s in shards] == ["0/4", "1/4", "2/4", "3/4"]
    before = digest(tmp_path / "s0" / "store.sqlite")
    merged = cli("merge", *(str(tmp_path / f"s{i}") for i in range(4)), "--into",
                 str(tmp_path / "merged"))  # fmt: skip
    assert merged.exit_code == 0, merged.output
    assert digest(tmp_path / "s0" / "store.sqlite") == before  # sources are only read
    whole = evaluate(cli, tmp_path / "merged")
    assert sum(whole["metrics"]["cache"]["computed"].values()) == 0
    single = evaluate(cli, tmp_path / "single")
    assert without_seconds(whole["metrics"]["tables"]) == without_seconds(
        single["metrics"]["tables"]
    )
    copied = {p.name for p in (tmp_path / "merged" / "runs").iterdir()}
    assert {f"{s['run_id']}.json" for s in shards} <= copied
    again = cli("merge", str(tmp_path / "s0"), "--into", str(tmp_path / "merged"))
    assert again.exit_code == 0 and "added nothing" in again.output  # merging twice adds nothing


def test_a_conflicting_entry_is_reported_and_never_overwritten(cli, tmp_path):
    evaluate(cli, tmp_path / "a", "--shard", "0/2")
    evaluate(cli, tmp_path / "b", "--shard", "0/2")  # the same shard, computed again
    db = sqlite3.connect(tmp_path / "b" / "store.sqlite")
    key = db.execute("SELECT key FROM entries WHERE kind = 'score'").fetchone()[0]
    db.execute("UPDATE entries SET value = ? WHERE kind = 'score' AND key = ?", ("[]", key))
    db.commit()
    db.close()
    result = cli("merge", str(tmp_path / "a"), str(tmp_path / "b"), "--into",
                 str(tmp_path / "m"))  # fmt: skip
    assert result.exit_code == 1  # only the tampered entry: seconds measured differ, not values
    assert "conflict: score" in result.output and "1 conflicts" in result.output
    value = sqlite3.connect(tmp_path / "a" / "store.sqlite").execute(
        "SELECT value FROM entries WHERE kind = 'score' AND key = ?", (key,)
    )
    value = value.fetchone()[0]
    kept = sqlite3.connect(tmp_path / "m" / "store.sqlite").execute(
        "SELECT value FROM entries WHERE kind = 'score' AND key = ?", (key,)
    )
    assert kept.fetchone()[0] == value


def test_an_older_store_merges_through_an_upgraded_copy(cli, tmp_path):
    from test_packing import _to_version_1

    first = evaluate(cli, tmp_path / "old")
    _to_version_1(tmp_path / "old")
    before = digest(tmp_path / "old" / "store.sqlite")
    result = cli("merge", str(tmp_path / "old"), "--into", str(tmp_path / "m"))
    assert result.exit_code == 0, result.output
    assert digest(tmp_path / "old" / "store.sqlite") == before
    whole = evaluate(cli, tmp_path / "m")
    assert sum(whole["metrics"]["cache"]["computed"].values()) == 0
    assert without_seconds(whole["metrics"]["tables"]) == without_seconds(
        first["metrics"]["tables"]
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["eval", "--shard", "4/4"], "0 <= I < N"),
        (["eval", "--shard", "x"], "0 <= I < N"),
        (["eval", "--shard", "1/0"], "0 <= I < N"),
        (["merge", "{tmp}/nothing", "--into", "{tmp}/m"], "holds no prmh store"),
        (["merge", "{tmp}/m", "--into", "{tmp}/m"], "is the target itself"),
        (["merge", "{tmp}/m", "--into", "{tmp}/m/runs"], "is inside the source"),
        (["merge", "{tmp}/m", "--into", "{tmp}/m/new/deeper"], "is inside the source"),
    ],
)
def test_bad_shards_and_merges_are_one_clear_message(cli, tmp_path, args, message):
    (tmp_path / "nothing").mkdir()
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "runs").mkdir()
    result = cli(*(a.replace("{tmp}", str(tmp_path)) for a in args))
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert sorted(p.name for p in (tmp_path / "m").rglob("*")) == ["runs"]  # nothing made


def test_the_python_api_takes_a_shard(tmp_path):
    import prmh

    result = prmh.evaluate(world="sim", limit=6, shard="1/3", results_dir=tmp_path)
    (table,) = result.tables
    assert table["problems"] == 2 and result.record["config"]["shard"] == "1/3"


def test_entries_larger_than_prmh_writes_are_left_out_of_a_merge(cli, tmp_path, monkeypatch):
    """A stranger's store may hold an entry as large as their disk: merge read each chunk of
    rows whole. Entries over the bound (64 MB, no prmh entry comes near; lowered here) or with
    keys over 1,024 characters are left out and counted; the rest is merged."""
    import prmh.merge

    evaluate(cli, tmp_path / "theirs")
    db = sqlite3.connect(tmp_path / "theirs" / "store.sqlite")
    db.execute("INSERT INTO entries VALUES ('generation', 'huge', ?, 'r', 0)", ("x" * 5000,))
    db.execute("INSERT INTO entries VALUES ('generation', ?, '1', 'r', 0)", ("k" * 2000,))
    db.commit()
    db.close()
    monkeypatch.setattr(prmh.merge, "MAX_JSON_FILE_BYTES", 4096)
    merged = cli("merge", str(tmp_path / "theirs"), "--into", str(tmp_path / "ours"))
    assert merged.exit_code == 0, merged.output
    assert "left out 2 entries larger than any prmh writes" in merged.output
    ours = sqlite3.connect(tmp_path / "ours" / "store.sqlite")
    assert ours.execute("SELECT COUNT(*) FROM entries WHERE key = 'huge'").fetchone() == (0,)
    assert ours.execute("SELECT COUNT(*) FROM entries WHERE kind = 'generation'").fetchone()[0]
