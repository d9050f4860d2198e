"""Code tasks: the bundled `code` world, the `code` grader's rules and the LeetCodeDataset and
LiveCodeBench task files, each against its source.

References:
- LiveCodeBench/LiveCodeBench@28fef95ea8c9f7a547c8329f2cd3d32b92c1fa24,
  ``lcb_runner/benchmarks/code_generation.py`` (private test cases: JSON, else base64 of zlib
  of a pickled JSON string; ``metadata.func_name``) and ``lcb_runner/evaluation/testing_util.py``
  (``grade_call_based``: one JSON argument per input line, tuples read as lists, ``==``;
  ``grade_stdio``: ``get_stripped_lines``, as many lines, each equal or all-decimal equal).
- newfacade/LeetCodeDataset@477ccb2313bacc324851f2f2576e489065cf5767, ``eval_lcd/`` and the
  dataset's fields (``entry_point`` ``Solution().name``, ``prompt`` helper imports run before
  the completion, ``input_output`` cases written ``x = 1``).
"""

from __future__ import annotations

import base64
import json
import pickle
import zlib

import pytest

from prmh.answers import python_block
from prmh.code_tests import leetcode, livecodebench
from prmh.errors import PrmhError
from prmh.plugins import code_world
from prmh.plugins.code_grader import grade_code, same_return, same_stdout
from prmh.plugins.splitters import CodeBlocksSplitter, CodeLinesSplitter
from prmh.task_files import FileTask, load_definition


def test_the_answer_is_the_last_complete_fenced_python_block():
    text = "plan\n```python\nx = 1\n```\nthen\n```py\ndef f():\n    return 2\n```\n"
    assert python_block(text) == "def f():\n    return 2\n"
    assert python_block(text + "```python\ncut off") == "def f():\n    return 2\n"
    assert python_block("no code at all") is None
    assert python_block("```python\n\n```") is None


def test_stdio_comparison_is_livecodebench_grade_stdio():
    assert same_stdout("1 2\n3\n", "  1 2  \n3")
    assert same_stdout("0.50 2\n", "0.5 2.0")  # a differing line of numbers: as decimals
    assert not same_stdout("YES 1.0", "YES 1")  # a differing line must be all numbers
    assert not same_stdout("1\n2", "1")  # as many lines
    assert not same_stdout("1\n\n2", "1\n2")  # inner blank lines count


def test_return_comparison_reads_literals():
    assert same_return("(0, 1)", "[0, 1]")  # a tuple as a list, as grade_call_based does
    assert same_return("True", "true")  # JSON outputs (LiveCodeBench) read too
    assert same_return("0.30000000000000004", "0.3")
    assert not same_return("1", "True") and not same_return("'1'", "1")


def test_the_bundled_code_world_is_deterministic_and_split():
    test = code_world.generate("test", 0, 2, 5)
    assert test == code_world.generate("test", 0, 2, 5)
    assert len(test) == 500 and len({p.question for p in test}) == 500
    train = {p.question for p in code_world.generate("train", 0, 2, 5)}
    assert not train & {p.question for p in test}
    assert {p.metadata["kind"] for p in test} == {"list", "str", "int"}


def test_gold_solutions_pass_and_single_line_mistakes_fail():
    """Each gold program passes its hidden tests in the sandbox; every wrong line the sim
    generator can write fails one, unless no input tells it apart from the gold line."""
    for problem in code_world.generate("test", 0, 2, 5)[:6]:
        gold = list(problem.steps)
        assert grade_code(python_block("\n".join(gold)), problem.answer)[0], problem.id
        meta = problem.metadata
        for i, (op, k, c) in enumerate(meta["ops"]):
            for j, wrong in enumerate(code_world.variants(meta["kind"], [op, k, c])):
                program = python_block("\n".join([*gold[: i + 2], f"    {wrong}", *gold[i + 3 :]]))
                o, dk = code_world.LINES[meta["kind"]][op][2][j]
                mutant = [*meta["ops"][:i], [o, max(1, k + dk), c], *meta["ops"][i + 1 :]]
                inputs = [json.loads(t["input"])[0] for t in json.loads(problem.answer)["tests"]]
                differs = any(
                    code_world.run(meta["kind"], mutant, meta["final"], x)
                    != code_world.run(meta["kind"], meta["ops"], meta["final"], x)
                    for x in inputs
                )
                passed, detail = grade_code(program, problem.answer)
                assert passed != differs, (problem.id, wrong, detail)


def test_code_splitters_keep_indentation_and_round_trip():
    program = "def f(xs):\n    xs = xs[1:]\n\n\n    return xs  \n"
    lines = CodeLinesSplitter()
    assert lines.split(program) == ["def f(xs):", "    xs = xs[1:]", "    return xs"]
    blocks = CodeBlocksSplitter()
    assert blocks.split(program) == ["def f(xs):\n    xs = xs[1:]", "    return xs"]
    for splitter in (lines, blocks):
        steps = splitter.split(program)
        assert splitter.split(splitter.join(steps)) == steps


LEETCODE_ROW = {
    "task_id": "add-one",
    "difficulty": "Easy",
    "problem_description": "Return x + 1.",
    "prompt": "from typing import *\nfrom collections import *\n",
    "starter_code": "class Solution:\n    def addOne(self, x: int) -> int:\n        ",
    "entry_point": "Solution().addOne",
    "input_output": [{"input": "x = 1", "output": "2"}, {"input": "x = -1", "output": "0"}],
}


def test_leetcode_rows_become_function_tests_after_the_helper_imports():
    spec = json.loads(leetcode(LEETCODE_ROW))
    assert spec["entry"] == "Solution().addOne" and spec["setup"].startswith("from typing")
    right = "class Solution:\n    def addOne(self, x: List[int]) -> int:\n        return x + 1\n"
    assert grade_code(right, json.dumps(spec)) == (True, "2/2 tests passed (..)")
    wrong = right.replace("x + 1", "x + 2")
    assert grade_code(wrong, json.dumps(spec)) == (
        False,
        "0/2 tests passed (WW); test 1: wrong answer",
    )


def test_programs_may_import_what_leetcodes_judge_offers():
    """``prmh[code]`` installs sortedcontainers beside prmh; the sandbox can import it."""
    pytest.importorskip("sortedcontainers")
    program = (
        "from sortedcontainers import SortedList\ndef f(xs):\n    return list(SortedList(xs))\n"
    )
    spec = json.dumps({"tests": [{"input": "[[3, 1, 2]]", "output": "[1, 2, 3]"}]})
    assert grade_code(program, spec)[0]


def _packed(cases: list[dict]) -> str:
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(cases)))).decode()


def test_livecodebench_rows_with_packed_private_tests():
    functional = {
        "public_test_cases": json.dumps(
            [{"input": "[2,7,11,15]\n9", "output": "[0, 1]", "testtype": "functional"}]
        ),
        "private_test_cases": _packed(
            [{"input": "[3,3]\n6", "output": "[0, 1]", "testtype": "functional"}]
        ),
        "metadata": json.dumps({"func_name": "twoSum"}),
    }
    spec = json.loads(livecodebench(functional))
    assert spec["entry"] == "Solution().twoSum" and len(spec["tests"]) == 2
    assert spec["tests"][1]["input"] == "[[3, 3], 6]"
    two_sum = (
        "class Solution:\n    def twoSum(self, nums, target):\n"
        "        seen = {}\n        for i, n in enumerate(nums):\n"
        "            if target - n in seen:\n                return (seen[target - n], i)\n"
        "            seen[n] = i\n"
    )
    assert grade_code(two_sum, json.dumps(spec))[0]
    stdin = {
        "public_test_cases": json.dumps([{"input": "2 3\n", "output": "5\n", "testtype": "stdin"}]),
        "private_test_cases": json.dumps([{"input": "1 1\n", "output": "2", "testtype": "stdin"}]),
        "metadata": "{}",
    }
    spec = json.loads(livecodebench(stdin))
    assert spec["mode"] == "stdio"
    assert grade_code("a, b = map(int, input().split())\nprint(a + b)\n", json.dumps(spec))[0]


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    row = {
        "question_content": "q",
        "question_id": "1",
        "starter_code": "",
        "platform": "atcoder",
        "difficulty": "easy",
        "public_test_cases": "[]",
        "private_test_cases": base64.b64encode(zlib.compress(pickle.dumps(Evil()))).decode(),
        "metadata": "{}",
    }
    data = tmp_path / "lcb.jsonl"
    data.write_text(json.dumps(row) + "\n")
    definition = load_definition(open(_task("livecodebench")).read(), "livecodebench.toml")
    with pytest.raises(PrmhError, match="cannot be read as livecodebench tests"):
        FileTask(definition, data=str(data)).problems()


def _task(name: str) -> str:
    from importlib.resources import files

    return str(files("prmh.tasks") / f"{name}.toml")


def test_task_files_fill_metadata_into_the_prompt(tmp_path):
    data = tmp_path / "lc.jsonl"
    data.write_text(json.dumps(LEETCODE_ROW) + "\n")
    task = FileTask(load_definition(open(_task("leetcode")).read(), "leetcode"), data=str(data))
    (problem,) = task.problems()
    assert problem.metadata["language"] == "python"
    assert "def addOne(self, x: int)" in task.prompt(problem)
    assert task.extract_answer("```python\nclass Solution: pass\n```") == "class Solution: pass\n"
    with pytest.raises(PrmhError, match="not a test format"):
        load_definition(open(_task("leetcode")).read().replace('"leetcode"', '"apps"'), "x")


def test_sim_writes_code_line_by_line_and_from_any_prefix():
    from prmh import SampleRequest
    from prmh.plugins.sim import SimGenerator
    from prmh.plugins.sim_code import line_options

    sim = SimGenerator()
    for problem in code_world.generate("test", 0, 2, 5)[:10]:
        options = [[t for t, _ in line] for line in line_options(problem, 0.06, 0.8)]
        prefix = ""
        for i, line in enumerate(options):
            ask = SampleRequest(problem, "p", 1, 0, prefix=prefix, stop=("\n",))
            (g,) = sim.sample([ask])[0]
            assert g.text in line, (i, g.text)  # one whole line, one of its options
            assert (g.stop, g.finished) == (
                (None, True) if i == len(options) - 1 else ("\n", False)
            )
            assert "".join(g.tokens) == g.text and len(g.token_logprobs) == len(g.tokens)
            prefix += g.text + "\n"
        head = problem.steps[2][: len(problem.steps[2]) // 2].rsplit(" ", 1)[0]  # mid-line
        ask = SampleRequest(problem, "p", 1, 0, prefix="\n".join(problem.steps[:2]) + "\n" + head)
        (g,) = sim.sample([ask])[0]
        assert (head + g.text).split("\n")[0] in options[2]
        assert python_block("\n".join(problem.steps[:2]) + "\n" + head + g.text) is not None


def test_the_oracle_checks_code_lines_against_the_gold_program():
    from prmh import ScoreRequest
    from prmh.plugins.oracle import OraclePRM

    problem = code_world.generate("test", 0, 2, 5)[3]
    gold = problem.steps
    meta = problem.metadata
    wrong = f"    {code_world.variants(meta['kind'], meta['ops'][1])[0]}"
    bad = (*gold[:3], wrong, *gold[4:])
    oracle = OraclePRM()
    good_scores, bad_scores = (
        s.probs for s in oracle.score([ScoreRequest(problem, gold), ScoreRequest(problem, bad)])
    )
    assert all(p > 0.9 for p in good_scores)
    assert [p > 0.5 for p in bad_scores] == [True] * 3 + [False] * (len(bad) - 3)
    for steps, want in ((gold, [True, True]), (bad, [True, False])):  # exact pieces, mid-line
        rest = "".join("\n" + line for line in steps[1:])[len("\ndef f(") :]
        pieces = ("```python\ndef f(", rest)
        assert [p > 0.5 for p in oracle.score([ScoreRequest(problem, pieces)])[0].probs] == want


def test_every_search_runs_on_code_with_line_and_confidence_steps(tmp_path):
    """Step searches read the splitter's separator (a line for code-lines) and keep the
    tokens of what they build, so the confidence splitter reads their beams too."""
    import prmh

    searches = ["best-of-n", "beam", "dvts", "beam-ias", "bon-ias", "backtrack", "tvd"]
    result = prmh.evaluate(
        world="code",
        search=searches,
        splitter=["code-lines", "adaptive-confidence"],
        prm="oracle:quantiles=true",
        agg="min",
        budget=[4],
        limit=8,
        results_dir=tmp_path,
    )
    rows = {(c["row"], c["search"]): c["mean"] for c in result.accuracy()}
    for splitter in ("code-lines", "adaptive-confidence"):
        row = f"oracle:quantiles=True · {splitter} · min · argmax"
        assert all(rows[(row, s)] > 0.5 for s in searches), (splitter, rows)


def test_the_sim_prior_of_a_code_problem_is_the_solvers_rate_of_gold_programs():
    """``success_probability`` (the oracle's ``sim_prior``) against the share of 300 sim
    samples per problem that write the gold program."""
    from prmh import SampleRequest
    from prmh.plugins.sim import SimGenerator, success_probability

    sim, gaps = SimGenerator(), []
    for problem in code_world.generate("test", 0, 2, 5)[:20]:
        (row,) = sim.sample([SampleRequest(problem, "p", 300, 0)])
        rate = sum(g.text == "\n".join(problem.steps) for g in row) / len(row)
        gaps.append(abs(rate - success_probability(problem)))
    assert sum(gaps) / len(gaps) < 0.06 and max(gaps) < 0.15
