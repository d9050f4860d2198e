"""Pre-sampled corpora (``--samples``, the ``file`` generator, the ``samples`` task), written in
each published format and evaluated through the CLI; expected tables derived by hand here.

The formats, as the releases read or write them:
- PQM ``bon_eval_hf.py`` at c5a2a02 (``__main__``): a JSON list of ``{question, responses}``,
  each response ``{text}``; gold answers from MATH-500 by position (here: the task's).
- ASPRM ``evaluation/math/BON/eval.py`` at 6682033: JSONL ``{idx, question, pred[N],
  gt_answer, ...}``.
- calibration release ``main_infer_vllm.py`` at 3e3225a: a JSON list of ``{question,
  gold_answer, generations[N]}``.
- tt_scale ``prm_correlation/generate_best_of_n.py`` at 5c7008d: ``{metadata, results: [{index,
  question, gold_answer, solutions: [{text, num_tokens}]}]}``.
"""

from __future__ import annotations

import json
from collections import Counter
from math import comb

import pytest

from prmh import StepScores, hookimpl
from prmh.registry import load_registry
from prmh.testing import inline_plugin

N = 8
BUDGETS = (1, 4, 8)


def problems():
    return load_registry().create("task", "arith", {}).instance.problems(5)


def corpus():
    """Per problem, 8 solutions: solution j is right when (i + j) % 3 == 0; each says how
    confident it is, which the test PRM reads as its score (distinct within a problem)."""
    out = []
    for i, p in enumerate(problems()):
        solutions = []
        for j in range(N):
            right = (i + j) % 3 == 0
            answer = p.answer if right else str(int(p.answer) + 1)
            confidence = 10 + (7 * j + 3 * i) % N * 10
            solutions.append(
                f"We work it out.\n\nConfidence {confidence}.\n\nThe answer is {answer}."
            )
        out.append((p, solutions))
    return out


class ConfidencePRM:
    """Every step scores the confidence its solution states."""

    def score(self, requests):
        out = []
        for r in requests:
            stated = [s for s in r.steps if s.startswith("Confidence")]
            value = int(stated[0].split()[1].rstrip(".")) / 100 if stated else 0.01
            out.append(StepScores(tuple(value for _ in r.steps)))
        return out


class Plugin:
    @hookimpl
    def prmh_register_prm(self, register):
        register("confidence", ConfidencePRM)


def write(path, preset, data):
    records = []
    for p, solutions in data:
        if preset == "prmh":
            records.append({"id": p.id, "question": p.question, "answer": p.answer,
                            "solutions": solutions})  # fmt: skip
        elif preset == "pqm":
            records.append({"question": p.question, "responses": [{"text": s} for s in solutions]})
        elif preset == "asprm":
            records.append({"idx": p.id, "question": p.question, "input": p.question,
                            "pred": solutions, "answer": "", "gt_answer": p.answer})  # fmt: skip
        elif preset == "calibration":
            records.append({"question": p.question, "gold_answer": p.answer,
                            "generations": solutions})  # fmt: skip
        else:
            records.append({"index": p.id, "question": p.question, "gold_answer": p.answer,
                            "solutions": [{"text": s, "num_tokens": len(s.split())}
                                          for s in solutions]})  # fmt: skip
    if preset in ("prmh", "asprm"):
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    elif preset == "tt-scale":
        path.write_text(json.dumps({"metadata": {"n": N}, "results": records}))
    else:
        path.write_text(json.dumps(records))
    return path


def expected(data):
    """pass@N (the unbiased estimator), majority@N (PQM's baseline: ``Counter(answers)
    .most_common(1)``, ties to the answer seen first) and the PRM's argmax, by hand."""
    out = {}
    for n in BUDGETS:
        passes, majorities, picks = [], [], []
        for p, solutions in data:
            right = [s.endswith(f"is {p.answer}.") for s in solutions]
            c = sum(right)
            passes.append(1 - comb(N - c, n) / comb(N, n))
            answers = [s.rsplit(" ", 1)[1] for s in solutions[:n]]
            majorities.append(Counter(answers).most_common(1)[0][0] == f"{p.answer}.")
            conf = [int(s.split("Confidence ")[1].split(".")[0]) for s in solutions[:n]]
            picks.append(right[conf.index(max(conf))])
        out[n] = [sum(x) / len(x) for x in (passes, majorities, picks)]
    return out


def run(cli, *args):
    with inline_plugin(Plugin()):
        result = cli("eval", *args, "--prm", "confidence", "--agg", "min", "--selector",
                     "argmax", *[a for n in BUDGETS for a in ("-n", str(n))], "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def table(record):
    (t,) = record["metrics"]["tables"]
    return {row.get("label") or row["prm"]: [c["mean"] for c in row["cells"]] for row in t["rows"]}


@pytest.mark.parametrize("preset", ["prmh", "pqm", "asprm", "calibration", "tt-scale"])
def test_each_published_format_evaluates_to_the_hand_computed_table(cli, tmp_path, preset):
    data = corpus()
    suffix = ".jsonl" if preset in ("prmh", "asprm") else ".json"
    path = write(tmp_path / f"corpus{suffix}", preset, data)
    task = ["--task", "arith", "--limit", "5"] if preset == "pqm" else ["-T", "grader=numeric"]
    record = run(cli, "--samples", str(path), *task)
    got = table(record)
    want = expected(data)
    for k, n in enumerate(BUDGETS):
        pass_n, majority, pick = want[n]
        assert got["pass@N"][k] == pytest.approx(pass_n)
        assert got["majority@N"][k] == pytest.approx(majority)
        assert got["confidence"][k] == pytest.approx(pick)
    assert record["metrics"]["tables"][0]["problems"] == 5
    again = run(cli, "--samples", str(path), *task)  # resumed: nothing generated again
    assert again["metrics"]["cache"]["computed"]["generation"] == 0
    assert table(again) == got


def test_seeds_draw_permutations_and_a_corpus_bounds_the_budget(cli, tmp_path):
    data = corpus()
    path = str(write(tmp_path / "c.jsonl", "prmh", data))
    generator = load_registry().create("generator", "file", {"path": path}).instance
    from prmh import SampleRequest

    p, solutions = data[0]
    seeds = [[g.text for g in generator.sample([SampleRequest(p, "", N, s)])[0]] for s in (0, 1)]
    assert seeds[0] == solutions and sorted(seeds[1]) == sorted(solutions) != seeds[1]
    ((g,),) = generator.sample([SampleRequest(p, "", 1, 1, first_index=3)])
    assert g.text == seeds[1][3] and g.finished
    with inline_plugin(Plugin()):
        too_many = cli("eval", "--samples", path, "-n", "9", "--prm", "confidence")
        beam = cli("eval", "--samples", path, "--search", "beam", "-n", "4", "--prm", "confidence")
        other = cli("eval", "--samples", path, "--task", "arith", "--limit", "6", "-n", "4")
    assert too_many.exit_code == 2 and "has 8 solutions" in too_many.output
    assert beam.exit_code == 2 and "cannot continue a step" in beam.output
    assert other.exit_code == 2 and "has no record in the corpus" in other.output
    for result in (too_many, beam, other):
        assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe not json", "is not JSON"),
        (b"[" * 100000 + b"]" * 100000, "is not JSON"),
        (b'{"metadata": 1}', "holds no list of records"),
        (b'[{"question": "q", "solutions": "one"}]', "must be a list of solutions"),
        (b'[{"question": "q", "solutions": [3]}]', "a solution is a string or an object"),
        (b'[{"prompt": "q", "solutions": []}]', "no field 'question'"),
        (b'[{"question": "q", "solutions": ["a"]}]', "no gold answer"),
        (b"[]", "holds no records"),
    ],
)
def test_a_bad_corpus_is_one_clear_message(cli, tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    result = cli("eval", "--samples", str(path), "--prm", "oracle")
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_a_splitter_that_finds_no_steps_is_named_below_the_table(cli, tmp_path):
    """A corpus whose steps end in single newlines, under the default double-newline: every
    solution was one step and the PRM scored it whole (an outcome reward), with nothing said.
    The table now says so; the splitter that finds the steps, or ``whole`` chosen on purpose,
    is not warned about. The sim world's code task under ``--world sim`` (double-newline on
    programs) is the same mistake."""
    data = [(p, [s.replace("\n\n", "\n") for s in sols]) for p, sols in corpus()]
    path = str(write(tmp_path / "c.jsonl", "prmh", data))

    def warnings(record):
        (t,) = record["metrics"]["tables"]
        return [w for w in t["warnings"] if "as one step" in w]

    (said,) = warnings(run(cli, "--samples", path, "-T", "grader=numeric"))
    assert said.startswith("splitter double-newline read every one of 40 finished solutions")
    for splitter in ("newline", "whole"):
        quiet = run(cli, "--samples", path, "-T", "grader=numeric", "--splitter", splitter)
        assert warnings(quiet) == []
    code = cli("eval", "--world", "sim", "--task", "code", "--limit", "3", "-n", "4", "--json")
    assert warnings(json.loads(code.output)) and code.exit_code == 0
    arith = cli("eval", "--world", "sim", "--limit", "3", "-n", "4", "--json")
    assert warnings(json.loads(arith.output)) == []
