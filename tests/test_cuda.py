"""CUDA paths, run where a GPU is (``benchmarks/on_gpu.sh`` on a lent machine) and skipped
elsewhere: each PRM recipe, the tiny world and a whole ``prmh eval`` on the GPU give the CPU's
numbers (fp32 to 1e-4; bf16, what dtype ``auto`` picks there, within 0.01). The hf generator's
GPU decoding is checked against transformers' own in tests/test_generators.py (its ``cuda``
cases)."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.gpu
torch = pytest.importorskip("torch")

from test_prms import RECIPES, STEPS, build, checkpoints, registry, score, tokenizer  # noqa: E402,F401
from test_tiny_world import GOLD_SCORES, GREEDY_START, SLIP_SCORES, problem, slipped  # noqa: E402,F401

from prmh import SampleRequest, ScoreRequest  # noqa: E402
from prmh.plugins.arith import ArithTask  # noqa: E402


@pytest.mark.parametrize("recipe", RECIPES)
def test_each_recipe_scores_on_cuda_as_on_the_cpu(registry, checkpoints, recipe):  # noqa: F811
    """Whole solutions in one padded pass, and a search's rounds read from the GPU's prefix
    cache (steps 1..k after 1..k-1), against the CPU's fp32 scores."""
    (cpu,) = score(build(registry, checkpoints, recipe, device="cpu"), STEPS)
    exact = build(registry, checkpoints, recipe, device="cuda", dtype="fp32")
    half = build(registry, checkpoints, recipe, device="cuda")
    assert half.scorer.dtype == torch.bfloat16 and half.identity_extra["dtype"] == "bf16"
    assert "dtype" not in exact.identity_extra
    for prm, tolerance in ((exact, 1e-4), (half, 0.01)):
        for k in range(1, len(STEPS) + 1):
            (part,) = score(prm, STEPS[:k])
            assert list(part.probs) == pytest.approx(list(cpu.probs[:k]), abs=tolerance)
        whole, short = score(prm, STEPS, STEPS[:2])
        assert list(whole.probs) == pytest.approx(list(cpu.probs), abs=tolerance)
        assert list(short.probs) == pytest.approx(list(cpu.probs[:2]), abs=tolerance)


def test_the_tiny_world_on_cuda_gives_its_fixed_outputs(registry, problem):  # noqa: F811
    """The shipped checkpoints' fixed scores and greedy start (tests/test_tiny_world.py),
    moved to the GPU: fp32 to 1e-4, bf16 within 0.02 (an implicit PRM's step score is a scaled
    difference of two models' log-probabilities summed over the step: bf16's rounding adds up;
    0.010 seen on the CPU in bf16 for a batch of two)."""
    for dtype, tolerance in (("fp32", 1e-4), ("auto", 0.02)):
        prm = registry.create("prm", "tiny", {"device": "cuda", "dtype": dtype}).instance
        gold, slip = prm.score(
            [ScoreRequest(problem, problem.steps), ScoreRequest(problem, slipped(problem))]
        )
        assert list(gold.probs) == pytest.approx(GOLD_SCORES, abs=tolerance)
        assert list(slip.probs) == pytest.approx(SLIP_SCORES, abs=tolerance)
    options = {"temperature": 0.0, "device": "cuda", "dtype": "fp32"}
    generator = registry.create("generator", "tiny", options).instance
    ((sample,),) = generator.sample([SampleRequest(problem, ArithTask().prompt(problem), 1, 0)])
    assert sample.finished and sample.text.startswith(GREEDY_START)


def test_a_step_search_eval_runs_on_cuda_and_is_kept_apart_from_the_cpu(cli):
    """beam and beam-IAS on the GPU in bf16 (kept KV caches, prefix-cached PRM reads): the run
    records the precision; its re-run reads everything back; the same command on the CPU
    computes its own results rather than reading the GPU's."""
    base = ["eval", "--world", "tiny", "--json", "--limit", "2", "-n", "2"]
    base += ["--search", "beam", "--search", "beam-ias"]
    gpu = [*base, "-G", "device=cuda", "-P", "device=cuda"]
    runs = [cli(*args) for args in (gpu, gpu, base)]
    assert all(r.exit_code == 0 for r in runs), [r.output for r in runs]
    first, again, cpu = (json.loads(r.output) for r in runs)
    for record, precision in ((first, "bf16"), (cpu, None)):
        for kind in ("generator", "prm"):
            assert record["config"][kind][0]["extra"].get("dtype") == precision
    computed = [r["metrics"]["cache"]["computed"] for r in (first, again, cpu)]
    assert computed[0]["generation"] > 0 and computed[0]["score"] > 0
    assert not any(computed[1].values()), computed[1]
    for what in ("generation", "score"):  # grades are keyed by content: texts may agree
        assert computed[2][what] == computed[0][what]


@pytest.mark.parametrize("attention", ["eager", "flash_attention_2"])
def test_each_attention_on_cuda_scores_as_sdpa(registry, checkpoints, attention):  # noqa: F811
    """-P attention on the GPU: eager in fp32 to 1e-4 of sdpa; flash_attention_2 (where
    flash-attn is installed; bf16 only) within 0.01 of sdpa in bf16, padded batches included."""
    if attention == "flash_attention_2":
        pytest.importorskip("flash_attn")
    dtype, tolerance = ("fp32", 1e-4) if attention == "eager" else ("bf16", 0.01)
    steps = (STEPS, STEPS[:2], STEPS[:3])
    options = {"device": "cuda", "dtype": dtype, "prefix_cache_tokens": 0}
    sdpa = score(build(registry, checkpoints, "qwen-math-prm", attention="sdpa", **options), *steps)
    other = build(registry, checkpoints, "qwen-math-prm", attention=attention, **options)
    for a, b in zip(score(other, *steps), sdpa, strict=True):
        assert list(a.probs) == pytest.approx(list(b.probs), abs=tolerance)
