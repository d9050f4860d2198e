"""The tiny world shipped in the package: its checkpoints load, fit the size budget and give
fixed outputs on fixed inputs, and a small `prmh eval` runs on them end to end."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

from prmh import SampleRequest, ScoreRequest
from prmh.plugins.arith import ArithTask
from prmh.plugins.tiny import WORLD

# Measured on the shipped checkpoints (recipes/tiny/build.sh); a change to loading, layout or
# scoring moves them.
GOLD_SCORES = [0.70121, 0.71188, 0.71323, 0.71961, 0.71978]
SLIP_SCORES = [0.70121, 0.48915, 0.11706, 0.12028, 0.12037]
CALIBRATED_QUANTILES = [[0.19661, 0.73199, 0.92913], [0.21898, 0.77125, 0.93525]]
GREEDY_START = "Dev starts with 25 cards.\n\nGetting 38 more gives 25 + 38 = 63 cards."


@pytest.fixture(scope="module")
def problem():
    return ArithTask().problems(1)[0]


def slipped(problem):
    """The gold solution with its second step's result off by ten (later steps unchanged)."""
    steps = list(problem.steps)
    head, _, value = steps[1].rpartition(" = ")
    number = value.split(" ")[0]
    steps[1] = f"{head} = {int(number) + 10}{value[len(number) :]}"
    return tuple(steps)


def test_the_shipped_world_fits_in_20_mb():
    size = sum(p.stat().st_size for p in WORLD.rglob("*") if p.is_file())
    assert 0 < size <= 20 * 2**20


def test_the_tiny_prm_gives_fixed_scores_and_catches_the_slip(registry, problem):
    prm = registry.create("prm", "tiny").instance
    gold, slip = prm.score(
        [ScoreRequest(problem, problem.steps), ScoreRequest(problem, slipped(problem))]
    )
    assert list(gold.probs) == pytest.approx(GOLD_SCORES, abs=1e-4)
    assert list(slip.probs) == pytest.approx(SLIP_SCORES, abs=1e-4)
    assert slip.probs[1] < gold.probs[1] - 0.2
    for k in (1, 2, 4):  # a partial solution scores as the same steps inside the whole
        (part,) = prm.score([ScoreRequest(problem, slipped(problem)[:k])])
        assert list(part.probs) == pytest.approx(SLIP_SCORES[:k], abs=1e-5)


def test_the_calibrated_prm_gives_fixed_quantiles(registry, problem):
    prm = registry.create("prm", "tiny-calibrated").instance
    (scores,) = prm.score([ScoreRequest(problem, problem.steps[:2])])
    assert scores.quantile_levels == (0.1, 0.5, 0.9)
    flat = [v for step in scores.quantiles for v in step]
    assert flat == pytest.approx([v for step in CALIBRATED_QUANTILES for v in step], abs=1e-4)
    assert all(a <= b <= c for a, b, c in scores.quantiles)


def test_the_tiny_generator_writes_a_fixed_greedy_solution(registry, problem):
    generator = registry.create("generator", "tiny", {"temperature": 0.0}).instance
    ((sample,),) = generator.sample([SampleRequest(problem, ArithTask().prompt(problem), 1, 0)])
    assert sample.finished and sample.text.startswith(GREEDY_START)


def test_the_tiny_world_runs_in_bf16(registry, problem):
    """dtype=bf16 (what ``auto`` picks on a GPU), run on the CPU: the implicit PRM's scores
    stay within 0.01 of fp32's (0.004 measured), and the generator samples from bf16 logits
    (its greedy solution starts as in fp32, every token log-probability at most 0)."""
    prm = registry.create("prm", "tiny", {"dtype": "bf16"}).instance
    (slip,) = prm.score([ScoreRequest(problem, slipped(problem))])
    assert list(slip.probs) == pytest.approx(SLIP_SCORES, abs=0.01)
    generator = registry.create("generator", "tiny", {"temperature": 0.0, "dtype": "bf16"})
    ask = SampleRequest(problem, ArithTask().prompt(problem), 1, 0)
    ((sample,),) = generator.instance.sample([ask])
    assert sample.text.startswith(GREEDY_START.split("\n")[0])
    assert all(lp <= 0 for lp in sample.token_logprobs)


def test_a_small_eval_runs_on_the_tiny_world(cli):
    result = cli("eval", "--world", "tiny", "--json", "--limit", "3", "-n", "1", "-n", "2")
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    config = record["config"]
    assert [g["name"] for g in config["generator"]] == ["tiny"]
    assert [p["name"] for p in config["prm"]] == ["tiny-calibrated"]
    searches = {"best-of-n", "beam-ias"}
    assert {s["name"] for s in config["search"]} == searches
    (table,) = record["metrics"]["tables"]
    rows = [row for row in table["rows"] if row["kind"] == "prm"]
    assert {(r["agg"], r["selector"]) for r in rows} == {
        (a, s) for a in ("min", "last") for s in ("argmax", "weighted-vote")
    }
    cells = [c for row in rows for c in row["cells"]]
    assert {c["search"] for c in cells} == searches
    assert all(0 <= c["mean"] <= 1 and c["compute"]["prm_tokens"] > 0 for c in cells)


def test_a_bare_eval_plans_the_tiny_world_and_sim_is_one_option_away(cli, monkeypatch):
    from prmh.matrix import build_plan

    monkeypatch.delenv("PRMH_WORLD", raising=False)
    plan = build_plan({})
    assert [s.name for s in plan.generator] == ["tiny"]
    assert [s.name for s in plan.prm] == ["tiny-calibrated"]
    assert plan.limit == 50 and plan.budget == (1, 4, 16)
    assert len(plan.agg) >= 2 and len(plan.selector) >= 2
    sim = build_plan({"world": "sim"})
    assert [s.name for s in sim.generator] == ["sim"] and sim.limit == 200
    assert build_plan({}, {"world": "sim"}).generator[0].name == "sim"
    bad = cli("eval", "--world", "big")
    assert bad.exit_code == 2 and "unknown world 'big'" in bad.output


def test_without_torch_the_error_names_the_extra_and_the_sim_world(registry, monkeypatch):
    import sys

    from prmh.errors import PrmhError

    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(PrmhError, match=r"hf extra \(torch is missing\).*--world sim"):
        registry.create("generator", "tiny")


def test_a_fully_cached_run_loads_no_model(tmp_path):
    """The tiny world's components are built on their first cache miss: a re-run that finds
    everything in the store never imports torch, and prints the same tables."""
    import subprocess
    import sys

    args = [sys.executable, "-m", "prmh", "eval", "--world", "tiny", "--limit", "3", "-n", "1",
            "-n", "2", "--results-dir", str(tmp_path)]  # fmt: skip
    first = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    probe = (
        "import runpy, sys; sys.argv = ['prmh', *sys.argv[1:]]\n"
        "try:\n    runpy.run_module('prmh', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "print('TORCH', 'torch' in sys.modules)\n"
    )
    again = subprocess.run([sys.executable, "-c", probe, *args[3:]], capture_output=True,
                           text=True, timeout=300)  # fmt: skip
    assert again.returncode == 0, again.stderr[-2000:]
    assert "TORCH False" in again.stdout
    tables = [o.stdout.split("compute per problem")[0].split("\n", 1)[1] for o in (first, again)]
    assert tables[0] == tables[1]


def test_a_dtype_of_auto_keys_gpu_results_apart_from_cpu_ones(registry, monkeypatch):
    """dtype=auto is bf16 on a GPU and fp32 on a CPU under the same options: a GPU's results
    carry the precision in their identity (so they never stand in for a CPU's cached fp32
    ones), CPU identities stay as they were, and the tiny world stays on the CPU unless moved
    (its identity known before anything is built)."""
    import torch

    from prmh.plugins.hf_models import auto_precision, resolved_dtype

    assert [resolved_dtype(d, "auto") for d in ("cpu", "cuda", "cuda:1")] == [
        "fp32", "bf16", "bf16",
    ]  # fmt: skip
    assert resolved_dtype("cuda", "fp32") == "fp32" and auto_precision("cuda", "fp16") == {}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert auto_precision("auto", "auto") == {"dtype": "bf16"}
    for kind in ("generator", "prm"):
        here = registry.create(kind, "tiny")
        moved = registry.create(kind, "tiny", {"device": "cuda"})
        assert set(here.identity["extra"]) == {"weights"}  # pinned to the CPU: fp32
        assert moved.identity["extra"] == {**here.identity["extra"], "dtype": "bf16"}
        assert moved.identity["args"] == here.identity["args"]  # device is a speed option
        assert moved.instance._built is None


@pytest.mark.parametrize(
    ("option", "message"),
    [("-G", "'gpu' is not a torch device"), ("-P", "'cuda:64': this machine's torch sees")],
)
def test_a_device_that_is_not_there_is_a_clear_error(cli, option, message):
    device = "gpu" if option == "-G" else "cuda:64"
    result = cli("eval", "--world", "tiny", "--limit", "2", "-n", "1", option, f"device={device}")
    assert result.exit_code == 2 and message in result.output
    assert "Traceback" not in result.output
