"""Task files: every one loads, local data files are read with clear errors, gold extraction."""

from __future__ import annotations

import json
import time

import pytest
from conftest import skip_without_extra

from prmh.errors import PrmhError
from prmh.plugins.task_files import definitions

EXPECTED = {
    "leetcode",
    "livecodebench",
    "math500",
    "gsm8k",
    "aime24",
    "aime25",
    "aime_2025",
    "hmmt_feb_2025",
    "cmimc_2025",
    "brumo_2025",
    "apex_2025",
    "hmmt_nov_2025",
    "gsm-plus",
    "processbench-gsm8k",
    "processbench-math",
    "processbench-olympiadbench",
    "processbench-omnimath",
    "cal-math500train",
    "cal-math500",
    "aime25-i",
    "aime25-ii",
    "gsm-symbolic",
    "gsm-symbolic-p1",
    "gsm-symbolic-p2",
}


def test_every_task_file_is_registered_with_its_source(registry):
    names = {d["name"] for d in definitions()}
    assert names == EXPECTED
    assert EXPECTED <= set(registry.names("task"))
    math500 = registry.get("task", "math500")
    assert "HuggingFaceH4/MATH-500 (test, 500 problems)" in math500.description
    for definition in definitions():
        assert "{question}" in definition["prompt"]
        task = registry.create("task", definition["name"]).instance
        assert task.grader in ("math-verify", "numeric", "code")


def test_gsm8k_from_jsonl_extracts_the_gold_answer(registry, tmp_path):
    data = tmp_path / "gsm.jsonl"
    data.write_text(
        json.dumps({"question": "Q1", "answer": "work\n#### 1,018"})
        + "\n\n"
        + json.dumps({"question": "Q2", "answer": "#### 7"})
        + "\n"
    )
    task = registry.create("task", "gsm8k", {"data": str(data)}).instance
    problems = task.problems()
    assert [(p.id, p.question, p.answer) for p in problems] == [
        ("gsm8k-0", "Q1", "1018"),
        ("gsm8k-1", "Q2", "7"),
    ]
    assert task.problems(1) == problems[:1]
    assert task.prompt(problems[0]).startswith("Q1\nPlease reason step by step")
    assert task.extract_answer("so \\boxed{12}") == "12"
    assert task.extract_answer("so 5 + 7 = 12\n#### 12") == "12"


def test_the_calibration_releases_math_subsets_take_every_kth_problem(registry, tmp_path):
    """young-j-park/prm-calibration ``utils/data.py`` at 1bfdaa0 (``get_dataset``):
    math500train is ``dataset.select(range(0, 7500, 15))`` of MATH train, math500 is
    ``select(range(0, 5000, 10))`` of MATH test, with the gold answer in the solution's boxed
    expression; the seven EleutherAI/hendrycks_math subjects concatenated in its order."""
    from prmh.plugins.task_files import definitions

    rows = [
        {"problem": f"P{i}", "solution": f"so \\boxed{{{i}}}", "level": "Level 1", "type": "x"}
        for i in range(40)
    ]
    data = tmp_path / "math.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    for name, k in (("cal-math500train", 15), ("cal-math500", 10)):
        task = registry.create("task", name, {"data": str(data)}).instance
        assert [(p.question, p.answer) for p in task.problems()] == [
            (f"P{i}", str(i)) for i in range(0, 40, k)
        ]
    by_name = {d["name"]: d for d in definitions()}
    subjects = ["algebra", "counting_and_probability", "geometry", "intermediate_algebra",
                "number_theory", "prealgebra", "precalculus"]  # fmt: skip
    for name, split in (("cal-math500train", "train"), ("cal-math500", "test")):
        assert by_name[name]["config"] == subjects and by_name[name]["split"] == split
    assert by_name["aime25-i"]["config"] == "AIME2025-I"
    assert by_name["aime25-ii"]["config"] == "AIME2025-II"
    assert by_name["gsm-symbolic"]["dataset"] == "apple/GSM-Symbolic"


def test_every_must_be_a_whole_number(cli, tmp_path):
    definition = tmp_path / "t.toml"
    definition.write_text(
        'name = "t"\ndescription = "d"\nversion = "1"\ndataset = "x/y"\nsplit = "test"\n'
        'grader = "exact"\nanswer = ["last-number"]\nprompt = "{question}"\nevery = 0\n'
        '[fields]\nquestion = "q"\n'
    )
    result = cli("eval", "--task", str(definition))
    assert result.exit_code == 2 and "every must be a whole number" in result.output


def test_json_and_parquet_files(registry, tmp_path):
    rows = [{"unique_id": "a/1", "problem": "P", "answer": "\\frac12", "level": 3}]
    (tmp_path / "m.json").write_text(json.dumps({"data": rows}))
    problem = registry.create(
        "task", "math500", {"data": str(tmp_path / "m.json")}
    ).instance.problems()[0]
    assert (problem.id, problem.answer) == ("a/1", "\\frac12")
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "m.parquet")
    from_parquet = registry.create("task", "math500", {"data": str(tmp_path / "m.parquet")})
    assert from_parquet.instance.problems() == [problem]


def test_processbench_keeps_steps_and_label_as_metadata(registry, tmp_path):
    row = {
        "id": "gsm8k-0",
        "problem": "P",
        "steps": ["a", "b"],
        "label": 1,
        "final_answer_correct": False,
        "generator": "x",
    }
    (tmp_path / "pb.jsonl").write_text(json.dumps(row) + "\n")
    (problem,) = registry.create(
        "task", "processbench-gsm8k", {"data": str(tmp_path / "pb.jsonl")}
    ).instance.problems()
    assert problem.metadata == {
        "solution_steps": ["a", "b"],
        "label": 1,
        "final_answer_correct": False,
    }


@pytest.mark.parametrize(
    "content,message",
    [
        ('{"question": "Q"}\n', "line 1: missing field 'answer'"),
        ('{"question": "Q", "answer": "1"}\n{"answer": "2"}\n', "line 2: missing field 'question'"),
        ('{"question": "Q", "answer": "1"}\n{"question": \n', "line 2: not valid JSON"),
        ('["a list"]\n', "line 1: expected an object with fields"),
        # these became the question "None" and the answer "[1]"
        ('{"question": null, "answer": "1"}\n', "line 1: the question is None, not text"),
        ('{"question": "Q", "answer": [1]}\n', r"line 1: the answer is \[1\], not text or a"),
        ('{"question": "Q", "answer": null}\n', "line 1: the answer is None, not text or a"),
    ],
)
def test_malformed_data_files_name_the_line_and_field(registry, tmp_path, content, message):
    data = tmp_path / "bad.jsonl"
    data.write_text(content)
    with pytest.raises(PrmhError, match=message):
        registry.create("task", "gsm8k", {"data": str(data)}).instance.problems()


def test_data_file_errors_from_the_cli(cli, tmp_path):
    missing = cli("eval", "--task", "gsm8k", "--data", str(tmp_path / "nope.jsonl"))
    assert missing.exit_code == 2 and "does not exist" in missing.output
    bad = tmp_path / "bad.json"
    bad.write_text('[{"question": "Q",\n "answer": }]')
    result = cli("eval", "--task", "gsm8k", "--data", str(bad))
    assert result.exit_code == 2 and "not valid JSON at line 2" in result.output
    assert not (cli.results_dir / "runs").exists() or not list((cli.results_dir / "runs").iterdir())
    arith = cli("eval", "--data", str(bad))
    assert arith.exit_code == 2 and "task 'arith' has no option 'data'" in arith.output


def test_the_hub_offline_is_a_clear_error_not_a_hang(registry, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "empty-cache"))
    started = time.monotonic()
    with pytest.raises(PrmhError, match=r"could not load HuggingFaceH4/MATH-500 .*-T data=FILE"):
        registry.create("task", "math500").instance.problems()
    assert time.monotonic() - started < 30


def test_without_a_network_the_message_names_offline_mode(registry, monkeypatch):
    """Without HF_HUB_OFFLINE the Hub's client retried for 23 s before failing (or reading
    the cache), and the message did not say how to skip that."""
    datasets = pytest.importorskip("datasets")

    def unreachable(*args, **kwargs):
        raise ConnectionError("Name or service not known")

    monkeypatch.setattr(datasets, "load_dataset", unreachable)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    hint = "HF_HUB_OFFLINE=1 reads the cache at once"
    with pytest.raises(PrmhError, match=hint):
        registry.create("task", "math500").instance.problems()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # already offline: nothing to add
    with pytest.raises(PrmhError) as refused:
        registry.create("task", "math500").instance.problems()
    assert hint not in str(refused.value) and "-T data=FILE" in str(refused.value)


def test_a_task_file_of_ones_own_runs_from_its_path(cli, tmp_path):
    """``--task path/to/task.toml`` reads the same format as the bundled tasks (here with a
    local data file), and a bad file is one clear message with exit status 2."""
    rows = [{"q": f"What is {a} + {a}?", "a": str(2 * a)} for a in range(1, 7)]
    (tmp_path / "mine.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "mine.toml").write_text(
        'name = "doubles"\ndescription = "Add a number to itself"\nversion = "1"\n'
        'dataset = "local"\nsplit = "test"\ngrader = "numeric"\nanswer = ["last-number"]\n'
        'prompt = "{question}"\n[fields]\nquestion = "q"\nanswer = "a"\n'
    )
    task = str(tmp_path / "mine.toml")
    result = cli("eval", "--world", "tiny", "--task", task, "--data", str(tmp_path / "mine.jsonl"),
                 "--limit", "3",
                 "--search", "best-of-n", "-n", "1", "--agg", "last", "--selector", "argmax",
                 "--json")  # fmt: skip
    if result.exit_code:
        skip_without_extra(result.output)
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    (table,) = record["metrics"]["tables"]
    assert table["task"].startswith(task) and table["problems"] == 3
    assert record["config"]["task"][0]["name"] == "doubles"
    (tmp_path / "bad.toml").write_text('name = "x"\n')
    bad = cli("eval", "--world", "sim", "--task", str(tmp_path / "bad.toml"))
    assert bad.exit_code == 2 and "lacks description" in bad.output
    missing = cli("eval", "--world", "sim", "--task", str(tmp_path / "none.toml"))
    assert missing.exit_code == 2 and "cannot read task file" in missing.output


@pytest.mark.parametrize("world", ["arith", "code_world"])
def test_a_procedural_task_draws_only_the_problems_a_limit_asks_for(world):
    """The first N problems of a procedural split are the start of the whole split, train
    still skipping test's questions, so ``--limit`` only saves the drawing of the rest."""
    import importlib

    module = importlib.import_module(f"prmh.plugins.{world}")
    for split in ("test", "train"):
        whole = module.generate(split, 0, 2, 5)
        assert module.generate(split, 0, 2, 5, 37) == whole[:37]
        assert module.generate(split, 0, 2, 5, 10**6) == whole


def test_the_prompt_fills_its_fields_in_one_pass(tmp_path):
    """A template's ``{question}`` and metadata fields (the calibration release's MATH tasks
    keep ``level`` and ``type``) are filled in one pass: a question that itself holds
    ``{type}`` (LaTeX such as ``\\text{type}``) keeps it, where filling one field after another
    wrote the metadata into the question."""
    from prmh.task_files import factory, load_definition

    definition = load_definition(
        'name = "t"\ndescription = "d"\nversion = "1"\ndataset = "local"\nsplit = "test"\n'
        'grader = "math"\nanswer = ["boxed"]\nprompt = "[{type}, level {level}] {question} {x}"\n'
        '[fields]\nquestion = "q"\nanswer = "a"\n[metadata]\nlevel = "level"\ntype = "type"\n',
        "t.toml",
    )
    row = {"q": "Find \\text{type} of {level} and {question}", "a": "1", "level": 5,
           "type": "Algebra"}  # fmt: skip
    (tmp_path / "d.jsonl").write_text(json.dumps(row) + "\n")
    task = factory(definition)(data=str(tmp_path / "d.jsonl"))
    (problem,) = task.problems()
    assert task.prompt(problem) == (
        "[Algebra, level 5] Find \\text{type} of {level} and {question} {x}"
    )
