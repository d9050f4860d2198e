"""What a run record says produced it, and how records are written."""

from __future__ import annotations

import json
import os
import sys
from importlib.metadata import PackageNotFoundError, version

from prmh import provenance
from prmh.files import write_atomic


def reference_versions(names):
    """``importlib.metadata.version`` (CPython's standard library), the reference: the first
    distribution on ``sys.path`` by that name, its METADATA's Version."""
    found = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def test_library_versions_are_importlib_metadatas(tmp_path, monkeypatch):
    """Installed libraries, one a folder ahead of the others shadows (its own METADATA), one
    named with a dash and dots, and one absent: each version equals importlib.metadata's."""
    for folder, name, number in [
        ("rich-0.0.1.dist-info", "rich", "0.0.1"),
        ("Fancy_Lib_X-2.1rc1.dist-info", "Fancy.Lib-x", "2.1rc1"),
    ]:
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {number}\n"
        )
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    names = (*provenance.LIBRARIES, "fancy-lib-x", "surely-not-installed")
    monkeypatch.setattr(provenance, "LIBRARIES", names)
    found = provenance.library_versions()
    assert {n: found[n] for n in names} == reference_versions(names)
    assert found["rich"] == "0.0.1" and found["fancy-lib-x"] == "2.1rc1"
    assert found["surely-not-installed"] is None and found["python"]


def test_records_are_json_with_their_first_levels_one_key_per_line(tmp_path):
    """Read back equal to what was written (floats, unicode, empty and nested containers), keys
    sorted, top-level and second-level keys each on a line of their own."""
    data = {
        "status": "success",
        "metrics": {"tables": [{"acc": 0.1 + 0.2, "label": "ä<b>"}], "empty": {}, "n": None},
        "argv": ["eval", "--prm", "x"],
        "config": {},
    }
    path = tmp_path / "record.json"
    write_atomic(path, data)
    text = path.read_text()
    assert json.loads(text) == data
    lines = text.splitlines()
    assert lines[0] == "{" and lines[-1] == "}"
    assert [line.split(":")[0].strip() for line in lines[1:-1]] == [
        '"argv"',
        '"config"',
        '"metrics"',
        '"empty"',
        '"n"',
        '"tables"',
        "},",
        '"status"',
    ]


def test_git_state_is_gits_own_head_and_dirty_flag(tmp_path, monkeypatch):
    """The revision ``git rev-parse HEAD`` names and ``git status --porcelain`` (tracked files)
    non-empty as the dirty flag; outside a checkout, neither, and no git process started."""
    import subprocess

    def no_git(*args, **kwargs):
        raise AssertionError("git started outside a checkout")

    with monkeypatch.context() as patched:
        patched.setattr(provenance.subprocess, "run", no_git)
        patched.delenv("GIT_DIR", raising=False)
        assert provenance.git_state(tmp_path) == {"revision": None, "dirty": None}

    def git(*args: str) -> str:
        env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
               "GIT_COMMITTER_EMAIL": "t@t", "PATH": os.environ["PATH"]}  # fmt: skip
        done = subprocess.run(["git", "-C", str(tmp_path / "repo"), *args], env=env,
                              capture_output=True, text=True, check=True)  # fmt: skip
        return done.stdout.strip()

    assert provenance.git_state(tmp_path) == {"revision": None, "dirty": None}
    (tmp_path / "repo" / "pkg").mkdir(parents=True)
    git("init", "-q")
    (tmp_path / "repo" / "pkg" / "a.py").write_text("x = 1\n")
    git("add", ".")
    git("commit", "-qm", "first")
    clean = provenance.git_state(tmp_path / "repo" / "pkg")
    assert clean == {"revision": git("rev-parse", "HEAD"), "dirty": False}
    (tmp_path / "repo" / "untracked.txt").write_text("not part of the code")
    assert provenance.git_state(tmp_path / "repo" / "pkg") == clean
    (tmp_path / "repo" / "pkg" / "a.py").write_text("x = 2\n")
    assert git("status", "--porcelain", "--untracked-files=no")
    assert provenance.git_state(tmp_path / "repo" / "pkg") == {**clean, "dirty": True}


def test_finished_records_are_judged_by_their_last_bytes(tmp_path, monkeypatch):
    """Every run looks through the results directory for records left "started" by a process
    that died. A finished record in prmh's layout (``status`` its last line) is judged by its
    last bytes, not read whole (a matrix's record holds ~100 KB of tables); a started one is
    read and marked, in prmh's layout and in any other (a hand-written one-line JSON)."""
    import platform
    import subprocess

    from prmh import liveness

    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True).stdout)  # fmt: skip
    owner = {"host": platform.node(), "pid": dead}
    big = {"tables": ["x" * 1000] * 100, "note": '"status": "started"'}
    write_atomic(tmp_path / "done.json", {"status": "success", "owner": owner, "started": 0,
                                          "metrics": big})  # fmt: skip
    write_atomic(tmp_path / "ours.json", {"status": "started", "owner": owner, "started": 0,
                                          "metrics": big})  # fmt: skip
    (tmp_path / "theirs.json").write_text(
        json.dumps({"status": "started", "owner": owner, "started": 0, "z": 1})
    )
    read = []
    whole = liveness.read_bounded  # how a record is read whole (bounded: a stranger's folder)
    monkeypatch.setattr(liveness, "read_bounded", lambda p: read.append(p.name) or whole(p))
    assert liveness.mark_interrupted(tmp_path) == ["ours", "theirs"]
    assert "done.json" not in read and {"ours.json", "theirs.json"} <= set(read)
    assert json.loads((tmp_path / "ours.json").read_text())["status"] == "interrupted"
    assert json.loads((tmp_path / "done.json").read_text())["status"] == "success"
