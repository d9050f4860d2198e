"""TVD (``--search tvd``) and the per-token alternatives it needs from generators.

Reference: Lux0926/ASPRM@6682033ba686b7d7fddd13df4cac09347148f42e,
``evaluation/math/TVD/tvd.py`` and ``evaluation/code/TVD/tvd_lct.py`` (greedy, one token per
request with ``logprobs = bon_size`` = 8; confidence ``round(100 * exp(logprob), 2)`` from
``detector.py``; below the threshold each top token is scored as ``prompt + token + " ки"`` and
the ``list.index(max)`` one is taken; an EOS or empty token ends decoding; on code, guidance
only while the text is inside a ```` ```python ```` block; thresholds 55 math, 28 code in
``run_tvd.sh`` and ``run_tvd_lct.sh``).
"""

from __future__ import annotations

import math
from importlib.resources import files
from types import SimpleNamespace

import pytest

from prmh import Compute, Generation, Problem, SampleRequest, StepScores
from prmh.plugins.tvd import TVD, confidence, inside_code

LOG = math.log


class ScriptedModel:
    """A greedy 'model' given as prefix -> [(token, p), ...] (likeliest first): the search
    context TVD sees, with a PRM that scores texts from a table."""

    def __init__(self, table: dict[str, list[tuple[str, float]]], scores: dict[str, float]):
        self.table, self.scores, self.scored, self.pauses = table, scores, [], []
        self.warnings: list[str] = []

    def extend(self, items, seed, stop, *, top_logprobs=0, pause_below=0.0):
        self.pauses.append(pause_below)
        out = []
        for _, prefix, n, first, temperature in items:
            assert (n, first, temperature) == (1, 0, 0.0)
            tokens, logprobs, tops, text = [], [], [], prefix
            while text in self.table:
                options = self.table[text]
                token, p = options[0]
                if token == "<eos>":
                    break
                tokens.append(token)
                logprobs.append(LOG(p))
                tops.append(tuple((t, LOG(q)) for t, q in options[:top_logprobs]))
                text += token
                if p < pause_below:
                    break
            finished = text in self.table and self.table[text][0][0] == "<eos>"
            out.append(
                [
                    Generation(
                        "".join(tokens),
                        finished,
                        len(tokens),
                        tuple(logprobs),
                        tuple(tokens),
                        top_logprobs=tuple(tops),
                    )
                ]
            )
        return out

    def score_steps(self, items):
        self.scored.append([steps for _, steps in items])
        return [StepScores((self.scores.get(steps[-1], 0.1),), num_tokens=1) for _, steps in items]

    def read(self, generation):
        return SimpleNamespace(generation=generation, finished=generation.finished)

    def rank(self, items):
        cands = [SimpleNamespace(solution=s, score=0.0) for _, s in items]
        return cands, [Compute() for _ in items]

    def warn(self, message):
        self.warnings.append(message)


MATH = Problem("m", "1+1?", "2")
CODE = Problem("c", "f", "[]", metadata={"language": "python"})


def decode(model: ScriptedModel, problem: Problem, **options) -> str:
    (result,) = TVD(**options).run(model, [problem], 1, 0)
    return result.candidates[0].solution.generation.text if result.candidates else ""


def test_confidence_is_the_releases_rounded_percentage():
    assert confidence(LOG(0.55)) == 55.0
    assert confidence(LOG(0.54994)) == 54.99
    assert confidence(LOG(0.549951)) == 55.0  # rounds up: not below 55


def test_unsure_tokens_are_chosen_by_the_prm_among_the_top_k():
    table = {
        "": [("The", 0.9), ("A", 0.1)],
        "The": [(" sum", 0.5), (" answer", 0.3), (" total", 0.2)],  # 50% < 55: guided
        "The total": [(" is", 0.9)],
        "The total is": [(" 2", 0.56), (" 3", 0.44)],  # 56% >= 55: greedy
        "The total is 2": [("<eos>", 1.0)],
    }
    scores = {"The sum": 0.2, "The answer": 0.7, "The total": 0.7}  # a tie: the first wins
    model = ScriptedModel(table, scores)
    table["The answer"] = [(" is", 0.99)]
    table["The answer is"] = [(" 2", 0.99)]
    table["The answer is 2"] = table["The sum"] = [("<eos>", 1.0)]
    assert decode(model, MATH) == "The answer is 2"
    assert model.scored == [[("The sum",), ("The answer",), ("The total",)]]
    assert model.pauses[0] == 0.55  # the generator may pause after its first unsure token
    assert decode(ScriptedModel(table, scores), MATH, kappa=50) == "The sum"  # 50 < 50 is false


def test_top_k_bounds_the_candidates_and_an_empty_best_token_ends():
    table = {"": [("x", 0.3), ("", 0.25), ("y", 0.25), ("z", 0.2)]}
    model = ScriptedModel(table, {"": 0.9, "z": 1.0})
    assert decode(model, MATH, top_k=3) == ""
    assert model.scored == [[("x",), ("",), ("y",)]]


def test_on_code_only_tokens_inside_a_python_block_are_guided():
    table = {
        "": [("Plan", 0.2), ("Idea", 0.2)],  # unsure, but outside code: greedy
        "Plan": [("\n```python", 0.9)],
        "Plan\n```python": [("\nx = 1", 0.25), ("\nx = 2", 0.2)],  # 25 < 28: guided
        "Plan\n```python\nx = 2": [("\n```", 0.3), ("\ny", 0.2)],  # 30 >= 28: greedy
        "Plan\n```python\nx = 2\n```": [("\nDone", 0.1), ("\nEnd", 0.05)],  # closed: greedy
        "Plan\n```python\nx = 2\n```\nDone": [("<eos>", 1.0)],
    }
    scores = {"Plan\n```python\nx = 2": 0.9}
    model = ScriptedModel(table, scores)
    assert decode(model, CODE) == "Plan\n```python\nx = 2\n```\nDone"
    assert len(model.scored) == 1
    assert inside_code("a\n```python\nx") and not inside_code("a\n```python\nx\n```\n")


def test_max_tokens_and_a_generator_without_alternatives():
    table = {"": [("a", 0.99)], "a": [("b", 0.1), ("c", 0.05)], "ab": [("c", 0.99)]}
    assert decode(ScriptedModel(table, {}), MATH, max_tokens=1) == ""  # unfinished: no answer

    class Plain(ScriptedModel):
        def extend(self, items, seed, stop, **kw):
            rows = super().extend(items, seed, stop, **kw)
            return [[Generation(g.text, g.finished, g.num_tokens)] for (g,) in rows]

    model = Plain(table, {})
    TVD().run(model, [MATH], 1, 0)
    assert model.scored == [] and "no top log-probabilities" in model.warnings[0]


def test_tvd_on_the_code_world_end_to_end(tmp_path):
    """Greedy vs TVD with the exact oracle, through the engine: TVD guides the unsure tokens
    and fixes lines; a second run computes nothing."""
    import prmh

    config = dict(world="code", search=["greedy", "tvd:kappa=80"], prm="oracle", agg="last",
                  budget=[1], limit=40, results_dir=tmp_path)  # fmt: skip
    result = prmh.evaluate(**config)
    cells = {
        c["search"]: c["mean"] for c in result.accuracy() if c["row"] == "oracle · last · argmax"
    }
    assert cells["tvd:kappa=80"] >= cells["greedy"] + 0.2, cells
    again = prmh.evaluate(**config)
    assert set(again.record["metrics"]["cache"]["computed"].values()) == {0}


def test_hf_top_logprobs_and_pause_equal_a_plain_forward_pass():
    torch = pytest.importorskip("torch")
    from prmh.registry import load_registry

    path = str(files("prmh.plugins") / "tiny_world" / "generator")
    hf = load_registry().create("generator", "hf", {"model": path, "max_new_tokens": 12})
    g = hf.instance
    prompt = "Problem: Ava has 5 apples. She gets 3 more apples.\n\nSolution:\n"
    ask = SampleRequest(MATH, prompt, 1, 0, temperature=0.0, top_logprobs=4)
    (full,) = g.sample([ask])[0]
    context = g.tokenizer.encode(prompt)
    with torch.no_grad():
        for alternatives in full.top_logprobs:
            logp = torch.log_softmax(g.model(torch.tensor([context])).logits[0, -1].float(), -1)
            values, ids = logp.topk(4)
            want = [g.tokenizer.decode([i], skip_special_tokens=True) for i in ids.tolist()]
            assert [t for t, _ in alternatives] == want
            assert (
                max(abs(a - b) for (_, a), b in zip(alternatives, values.tolist(), strict=True))
                < 1e-4
            )
            context.append(int(ids[0]))
    threshold = math.exp(sorted(full.token_logprobs)[1]) + 1e-6  # pauses at the 2nd unsure
    (paused,) = g.sample([SampleRequest(MATH, prompt, 1, 0, temperature=0.0, top_logprobs=4,
                                        pause_below=threshold)])[0]  # fmt: skip
    n = len(paused.tokens)
    assert paused.tokens == full.tokens[:n] and not paused.finished
    assert paused.token_logprobs[-1] < math.log(threshold)
    assert all(lp >= math.log(threshold) for lp in paused.token_logprobs[:-1])


def test_servers_are_asked_for_alternatives_and_their_answers_read():
    from prmh.plugins.generators.common import Sampling
    from prmh.plugins.generators.openai import build_payload, parse_completion
    from prmh.plugins.generators.vllm import build_requests, parse_output

    sampling = Sampling(0.7, 1.0, 16, ())
    ask = SampleRequest(MATH, "p", 1, 0, temperature=0.0, top_logprobs=3)
    assert build_payload("m", ask, 0, sampling, False)["logprobs"] == 3
    chat = build_payload("m", ask, 0, sampling, False, chat=True)
    assert (chat["logprobs"], chat["top_logprobs"]) == (True, 3)
    body = {"choices": [{"text": "ab", "finish_reason": "length", "logprobs": {
        "tokens": ["a", "b"], "token_logprobs": [-0.1, -0.9],
        "top_logprobs": [{"z": -3.0, "a": -0.1}, {"b": -0.9, "c": -1.0}]}}]}  # fmt: skip
    g = parse_completion(body, ask, sampling, 0.0)
    assert g.top_logprobs == ((("a", -0.1), ("z", -3.0)), (("b", -0.9), ("c", -1.0)))
    chat_body = {"choices": [{"message": {"content": "a"}, "finish_reason": "stop", "logprobs": {
        "content": [{"token": "a", "logprob": -0.2, "top_logprobs": [
            {"token": "a", "logprob": -0.2}, {"token": "q", "logprob": -2.0}]}]}}]}  # fmt: skip
    assert parse_completion(chat_body, ask, sampling, 0.0).top_logprobs == (
        (("a", -0.2), ("q", -2.0)),
    )
    ((_, params),) = build_requests([ask], sampling, lambda r: r.prompt)
    assert params["logprobs"] == 3
    lp = SimpleNamespace
    entry = {5: lp(logprob=-0.3, decoded_token="x"), 7: lp(logprob=-1.5, decoded_token="y")}
    completion = SimpleNamespace(text="x", token_ids=[5], logprobs=[entry],
                                 finish_reason="length", stop_reason=None)  # fmt: skip
    g = parse_output(SimpleNamespace(outputs=[completion]), ask, sampling, 0.0)
    assert g.top_logprobs == ((("x", -0.3), ("y", -1.5)),)


def test_the_advice_without_alternatives_names_generators_that_give_them(tmp_path):
    """TVD on the sim world's arith problems decodes greedily with a warning whose way out
    must not be the generator it ran with: sim gives alternatives on the code task only (the
    warning recommended plain "sim")."""
    import prmh
    from prmh.plugins.tvd import NO_ALTERNATIVES
    from prmh.registry import load_registry

    registry = load_registry()
    sim = registry.create("generator", "sim", {}).instance
    for task, gives in (("arith", False), ("code", True)):
        (problem,) = registry.create("task", task, {}).instance.problems(1)
        ask = SampleRequest(problem, "", 1, 0, temperature=0.0, top_logprobs=4)
        (g,) = sim.sample([ask])[0]
        assert (g.top_logprobs is not None) is gives
    result = prmh.evaluate(world="sim", search="tvd", prm="oracle", agg="last", budget=[1],
                           limit=3, results_dir=tmp_path)  # fmt: skip
    (table,) = result.record["metrics"]["tables"]
    assert table["warnings"] == [f"tvd with oracle: {NO_ALTERNATIVES}"]
    assert "sim on the code task" in NO_ALTERNATIVES
