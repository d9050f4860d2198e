"""A hostile model behind an OpenAI-compatible server, end to end through `prmh eval`.

Every completion of ``tests/hostile_corpus.py`` (76: the cases that hung or crashed prmh
before, and more of their kinds) is extracted, split, scored by a transformers PRM, voted on
and graded by math-verify and by the sympy grader, in a child process that must finish in
bounded time; nothing in the text runs, and the run's record is a success.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hostile_corpus import MARKER, completions
from standin import JSONHandler, serving

pytest.importorskip("torch")


class HostileServer(JSONHandler):
    """Each new (prompt, seed) gets the next completion of the corpus, round and round."""

    def do_POST(self):
        body = self.body()
        server = self.server
        with server.lock:
            key = (body["prompt"], body["seed"])
            if key not in server.given:
                server.given[key] = server.corpus[len(server.given) % len(server.corpus)]
            text = server.given[key]
        choice = {"text": text, "finish_reason": "stop", "stop_reason": None}
        usage = {"completion_tokens": max(1, len(text) // 4)}
        self.reply(200, {"choices": [choice], "usage": usage})


@pytest.fixture
def hostile_server():
    with serving(HostileServer, corpus=completions(), given={}) as served:
        yield served


@pytest.mark.parametrize("grader", ["math-verify", "sympy"])
def test_hostile_completions_end_to_end(hostile_server, tmp_path, grader):
    from prmh.testing import save_tiny_prm, tiny_tokenizer

    server, url = hostile_server
    corpus = server.corpus
    assert len(corpus) >= 60
    golds = ["42", "\\frac{1}{2}", "3", "x+1", "\\sqrt{2}", "7", "100", "-3", "0.25", "12"]
    data = tmp_path / "problems.jsonl"
    data.write_text(
        "".join(
            json.dumps({"unique_id": f"h{i}", "problem": f"Problem {i}?", "answer": g}) + "\n"
            for i, g in enumerate(golds)
        )
    )
    prm = save_tiny_prm(tmp_path / "prm", "value", tiny_tokenizer(special_tokens=["[PRM]"]))
    if os.path.exists(MARKER):
        os.remove(MARKER)
    args = [
        *("eval", "--task", "math500", "--data", str(data), "-T", f"grader={grader}"),
        *("--generator", "openai", "-G", "model=m", "-G", f'base_url="{url}"'),
        *("-G", "retries=0", "--prm", "value-head", "-P", f"model={prm}"),
        *("-P", "max_length=256", "--agg", "min", "--selector", "argmax"),
        *("--selector", "majority", "--selector", "weighted-vote", "-n", "8"),
        *("--grading-timeout", "3", "--results-dir", str(tmp_path / "results"), "--json"),
    ]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parent), OMP_NUM_THREADS="1")
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "prmh", *args], capture_output=True, text=True, timeout=420, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert len(server.given) == len(golds) * 8 and set(server.given.values()) == set(corpus)
    assert not os.path.exists(MARKER), "model text was executed"
    record = json.loads(done.stdout)
    assert record["status"] == "success"
    (table,) = record["metrics"]["tables"]
    assert table["problems"] == len(golds) and len(table["rows"]) == 2 + 3
    print(f"{grader}: {time.monotonic() - started:.0f} s, grading {table['grading']}")
