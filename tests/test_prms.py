"""The transformers PRM recipes on tiny local checkpoints (nothing is downloaded)."""

from __future__ import annotations

import json
import math
import re

import pytest

torch = pytest.importorskip("torch")

from prmh import Problem, ScoreRequest  # noqa: E402
from prmh.errors import PrmhError  # noqa: E402
from prmh.plugins.kv_cache import SHARED_LEAST, shared_groups  # noqa: E402
from prmh.prm_dirs import write_prm_config  # noqa: E402
from prmh.registry import load_registry  # noqa: E402
from prmh.testing import save_tiny_prm, tiny_tokenizer  # noqa: E402

QUESTION = "Ava has 12 apples. She gets 7 more. How many apples does Ava have?"
STEPS = (
    "Ava starts with 12 apples.",
    "Getting 7 more gives 12 + 7 = 19 apples.",
    "Step 3: check that 19 - 7 = 12.",
    "The answer is 19.",
)
PROBLEM = Problem("p", QUESTION, "19")

# recipe name -> (checkpoint head, options)
RECIPES = {
    "qwen-math-prm": ("classifier", {}),
    "math-shepherd": ("lm", {}),
    "rlhflow": ("lm", {}),
    "skywork": ("value", {}),
    "value-head": ("value", {}),
    "value-head:ş": ("value", {"separator": "ş"}),
    "value-head:layout": (
        "value",
        {"separator": "ş", "joiner": "\n\n", "step_suffix": "ş", "query_template": "Q: {question}"},
    ),
    "asprm": ("lm", {"good_token_id": 40, "bad_token_id": 41}),
    "generic": (
        "classifier",
        {"read": "classifier", "template": "chat", "step_suffix": "<extra_0>", "joiner": ""},
    ),
}


@pytest.fixture(scope="session")
def tokenizer():
    return tiny_tokenizer(extra_tokens=["ки", "ş"], special_tokens=["<extra_0>", "[PRM]"])


@pytest.fixture(scope="session")
def checkpoints(tokenizer, tmp_path_factory):
    root = tmp_path_factory.mktemp("prms")
    return {h: str(save_tiny_prm(root / h, h, tokenizer)) for h in ("lm", "classifier", "value")}


@pytest.fixture(scope="session")
def registry():
    return load_registry()


def build(registry, checkpoints, recipe, **extra):
    head, options = RECIPES[recipe]
    name = recipe.split(":")[0]
    return registry.create("prm", name, {"model": checkpoints[head], **options, **extra}).instance


def score(prm, *step_lists, question=QUESTION):
    problem = Problem("p", question, "19")
    return prm.score([ScoreRequest(problem, tuple(steps)) for steps in step_lists])


@pytest.mark.parametrize("recipe", RECIPES)
def test_scores_are_probabilities_one_per_step(registry, checkpoints, recipe):
    prm = build(registry, checkpoints, recipe)
    (out,) = score(prm, STEPS)
    assert len(out.probs) == len(STEPS)
    assert all(0.0 < p < 1.0 for p in out.probs)
    assert out.num_tokens > 20 and not out.truncated


def test_value_head_layout_options_shape_the_text(registry, checkpoints):
    """joiner, step_suffix and query_template lay out the text; scores are read at the mark."""
    prm = build(registry, checkpoints, "value-head:layout")
    text, spans = prm.recipe.render(QUESTION, STEPS[:2])
    assert text == f"Q: {QUESTION}\n{STEPS[0]}ş\n\n{STEPS[1]}ş"
    assert [text[a:b] for a, b in spans] == ["ş", "ş"]


@pytest.mark.parametrize("recipe", RECIPES)
def test_prefix_scored_alone_equals_the_full_pass(registry, checkpoints, recipe):
    """One pass per solution: step k's score is what scoring steps 1..k alone gives (1e-5),
    also when solutions of different lengths share a padded batch."""
    prm = build(registry, checkpoints, recipe)
    prefixes = [STEPS[:k] for k in range(1, len(STEPS) + 1)]
    results = score(prm, STEPS, *prefixes)
    full = results[0].probs
    for k, alone in enumerate(results[1:]):
        assert alone.probs[-1] == pytest.approx(full[k], abs=1e-5)
    one_at_a_time = [score(prm, p)[0].probs[-1] for p in prefixes]
    assert one_at_a_time == pytest.approx(list(full), abs=1e-5)


def _tokens_read(prm):
    """Count the tokens each forward pass of the PRM's backbone reads."""
    read = []
    prm.scorer.backbone.register_forward_pre_hook(
        lambda module, args, kwargs: read.append(kwargs["input_ids"].numel()), with_kwargs=True
    )
    return read


@pytest.mark.parametrize("recipe", RECIPES)
def test_a_longer_solution_is_read_from_its_cached_prefix(registry, checkpoints, recipe):
    """A step-level search's rounds: steps 1..k scored after steps 1..k-1. With the prefix
    cache only the new tokens go through the model, and every score equals scoring the same
    steps from scratch (1e-5), the reference being the scorer with the cache off."""
    cached = build(registry, checkpoints, recipe)
    plain = build(registry, checkpoints, recipe, prefix_cache_tokens=0)
    read, read_plain = _tokens_read(cached), _tokens_read(plain)
    for k in range(1, len(STEPS) + 1):
        (a,), (b,) = score(cached, STEPS[:k]), score(plain, STEPS[:k])
        assert a.probs == pytest.approx(b.probs, abs=1e-5)
        assert a.num_tokens == b.num_tokens  # the cost of reading it alone, either way
    assert sum(read) < 0.6 * sum(read_plain)
    assert read[0] == read_plain[0]  # nothing cached for the first step
    # Extensions of different cached prefixes, of different lengths, in one padded pass.
    other = "Ann has 7 pens and buys 12 more. How many pens does she have now?"
    first = [(QUESTION, STEPS[:1]), (other, STEPS[:2]), (QUESTION, STEPS[:3])]
    second = [(QUESTION, STEPS[:2]), (other, STEPS[:3]), (QUESTION, STEPS[:4])]
    for prm in (cached, plain):
        prm.score([ScoreRequest(Problem("p", q, "19"), tuple(s)) for q, s in first])
    before = len(read)
    batched = cached.score([ScoreRequest(Problem("p", q, "19"), tuple(s)) for q, s in second])
    alone = plain.score([ScoreRequest(Problem("p", q, "19"), tuple(s)) for q, s in second])
    assert len(read) == before + 1  # all three from their prefixes, in one pass
    for a, b in zip(batched, alone, strict=True):
        assert a.probs == pytest.approx(b.probs, abs=1e-5)


@pytest.mark.parametrize("recipe", RECIPES)
def test_solutions_sharing_their_question_read_it_once(registry, checkpoints, recipe):
    """One problem's candidates scored together (best-of-N, a search's first round): the
    tokens they share go through the model once and each solution continues from that KV
    cache. Every score equals scoring the solution alone (1e-5; the reference scorer has the
    prefix cache, and with it this sharing, off), which tests/test_prm_references.py ties to
    each release's own code."""
    prm = build(registry, checkpoints, recipe)
    plain = build(registry, checkpoints, recipe, prefix_cache_tokens=0)
    read = []  # tokens each pass computes (not padding, not what it reads from a KV cache)
    prm.scorer.backbone.register_forward_pre_hook(
        lambda m, a, kw: read.append(
            int(kw["attention_mask"][:, -kw["input_ids"].shape[1] :].sum())
        ),
        with_kwargs=True,
    )
    other = "Ann has 7 pens and buys 12 more. How many pens does she have now? Count them."
    longer = Problem("p", QUESTION + " Show the work one step at a time, then answer.", "19")
    asked = [ScoreRequest(longer, (step,)) for step in STEPS]
    asked += [ScoreRequest(Problem("q", other, "19"), STEPS[:k]) for k in (1, 2, 3)]
    together = prm.score(asked)
    for a, r in zip(together, asked, strict=True):
        (b,) = plain.score([r])
        assert a.probs == pytest.approx(b.probs, abs=1e-5)
        assert a.num_tokens == b.num_tokens  # the cost of reading it alone, either way
    ids = [prm.recipe.encode(r.problem.question, list(r.steps)).ids for r in asked]
    groups = shared_groups(ids, SHARED_LEAST)
    assert [len(g) for g, _ in groups] == [3, 4]  # the two questions' solutions
    assert sum(read) == sum(map(len, ids)) - sum((len(g) - 1) * n for g, n in groups)


def test_shared_groups_read_each_common_prefix_once():
    """Which rows share a prefix read once: the grouping that saves the most tokens, so a
    template every row starts with does not hide the longer question each group shares."""
    template, q1, q2 = [1] * 10, [2] * 40, [3] * 40
    rows = [template + q1 + [5], template + q2 + [6], template + q1 + [7, 8], template + q2]
    assert sorted(shared_groups(rows, 32)) == [([0, 2], 50), ([3, 1], 49)]
    assert shared_groups(rows, 60) == []  # nothing shares 60 tokens
    assert shared_groups([q1, q1, q1], 32) == [([0, 1, 2], 39)]  # each keeps a token to read
    assert shared_groups([q1], 1) == [] and shared_groups([], 1) == []


@pytest.mark.parametrize("recipe", ["qwen-math-prm", "math-shepherd", "value-head", "asprm"])
def test_positions_are_exactly_the_step_marks(registry, checkpoints, recipe, tokenizer):
    prm = build(registry, checkpoints, recipe)
    # The mark also appears in the question: positions must still be the inserted ones.
    question = "What is ки <extra_0> [PRM] ş ? " + QUESTION
    enc = prm.recipe.encode(question, list(STEPS))
    marks = {
        "qwen-math-prm": "<extra_0>",
        "math-shepherd": "ки",
        "value-head": "[PRM]",
        "asprm": "ки",
    }[recipe]
    mark_id = tokenizer.convert_tokens_to_ids(marks)
    all_marks = [i for i, t in enumerate(enc.ids) if t == mark_id]
    assert len(all_marks) == len(STEPS) + 1  # one in the question, one per step
    assert enc.positions == all_marks[1:]
    text = tokenizer.decode(enc.ids)
    for step in STEPS:
        assert step in text


def test_rlhflow_reads_the_logit_before_each_reply(registry, checkpoints, tokenizer):
    prm = build(registry, checkpoints, "rlhflow")
    enc = prm.recipe.encode(QUESTION, list(STEPS))
    plus = tokenizer.convert_tokens_to_ids("+")
    assert [enc.ids[p + 1] for p in enc.positions] == [plus] * len(STEPS)
    assert prm.recipe.good_bad == (plus, tokenizer.convert_tokens_to_ids("-"))
    # Each reply closes a turn that starts with the step (the first with the question too).
    text = tokenizer.decode(enc.ids[: enc.positions[0] + 1])
    assert text.rstrip().endswith("assistant") and f"{QUESTION} {STEPS[0]}" in text


def test_skywork_reads_the_step_token_after_each_step(registry, checkpoints, tokenizer):
    prm = build(registry, checkpoints, "skywork")
    enc = prm.recipe.encode(QUESTION, list(STEPS))
    newline = tokenizer.encode("\n", add_special_tokens=False)[0]
    assert [enc.ids[p] for p in enc.positions] == [newline] * len(STEPS)
    assert tokenizer.decode(enc.ids[: enc.positions[0]]).endswith(STEPS[0])


def _hidden(directory, token_id):
    from transformers import AutoModel

    model = AutoModel.from_pretrained(directory)
    return model(input_ids=torch.tensor([[token_id]])).last_hidden_state[0, 0].detach()


@pytest.fixture(scope="session")
def planted(tokenizer, tmp_path_factory):
    """0-layer checkpoints (a position's hidden state depends on its token only) whose heads
    are set so that reading at the right token gives a known probability."""
    root = tmp_path_factory.mktemp("planted")
    base = save_tiny_prm(root / "base", "lm", tokenizer, layers=0)
    ids = {
        "ки": tokenizer.convert_tokens_to_ids("ки"),
        "[PRM]": tokenizer.convert_tokens_to_ids("[PRM]"),
        "\n": tokenizer.encode("\n", add_special_tokens=False)[0],
    }

    def direction(token, value):  # a weight w with w . h(token) == value
        h = _hidden(base, ids[token])
        return value * h / h.dot(h)

    from safetensors.torch import load_file

    lm_head = load_file(base / "model.safetensors")["lm_head.weight"].clone()
    plus, minus = tokenizer.convert_tokens_to_ids("+"), tokenizer.convert_tokens_to_ids("-")
    lm_head[plus] = lm_head[minus] + direction("ки", math.log(0.8 / 0.2))
    # RLHFlow reads the logit before each '+' reply: the last token of the assistant header.
    from prmh.plugins.prms.recipes import ChatTurnsRecipe

    probe = ChatTurnsRecipe(tokenizer).encode(QUESTION, list(STEPS))
    ids["header"] = probe.ids[probe.positions[0]]
    reply_head = load_file(base / "model.safetensors")["lm_head.weight"].clone()
    reply_head[plus] = reply_head[minus] + direction("header", math.log(0.75 / 0.25))
    return {
        "rlhflow": save_tiny_prm(
            root / "rlhflow", "lm", tokenizer, layers=0, plant={"lm_head.weight": reply_head}
        ),
        "math-shepherd": save_tiny_prm(
            root / "shepherd", "lm", tokenizer, layers=0, plant={"lm_head.weight": lm_head}
        ),
        "value-head": save_tiny_prm(
            root / "value",
            "value",
            tokenizer,
            layers=0,
            plant={
                "v_head.summary.weight": direction("[PRM]", math.log(0.7 / 0.3)),
                "v_head.summary.bias": torch.zeros(1),
            },
        ),
        "skywork": save_tiny_prm(
            root / "skywork",
            "value",
            tokenizer,
            layers=0,
            plant={
                "v_head.summary.weight": direction("\n", math.log(0.6 / 0.4)),
                "v_head.summary.bias": torch.zeros(1),
            },
        ),
        # Zero first layer: the 2-class logits are the second layer's bias, whatever the input.
        "qwen-math-prm": save_tiny_prm(
            root / "qwen",
            "classifier",
            tokenizer,
            layers=0,
            plant={
                "score.0.weight": torch.zeros(32, 32),
                "score.2.bias": torch.tensor([0.0, math.log(9.0)]),
            },
        ),
    }


PLUS_MINUS = {"good_token": "+", "bad_token": "-"}


@pytest.mark.parametrize(
    "recipe,checkpoint,options,expected",
    [
        ("math-shepherd", "math-shepherd", {}, 0.8),
        ("asprm", "math-shepherd", "ids", 0.8),
        ("generic", "math-shepherd", {"step_suffix": " ки", "read": "lm", **PLUS_MINUS}, 0.8),
        ("rlhflow", "rlhflow", {}, 0.75),
        ("value-head", "value-head", {}, 0.7),
        ("skywork", "skywork", {}, 0.6),
        ("qwen-math-prm", "qwen-math-prm", {}, 0.9),
    ],
)
def test_planted_heads_give_the_known_scores(
    registry, planted, tokenizer, recipe, checkpoint, options, expected
):
    """A score read one token off would come from another token's hidden state and differ."""
    if options == "ids":
        ids = tokenizer.convert_tokens_to_ids(["+", "-"])
        options = {"good_token_id": ids[0], "bad_token_id": ids[1]}
    prm = registry.create("prm", recipe, {"model": str(planted[checkpoint]), **options}).instance
    (out,) = score(prm, STEPS)
    assert out.probs == pytest.approx((expected,) * len(STEPS), abs=1e-5)


def test_a_tokenizer_without_the_mark_is_refused_before_scoring(registry, tmp_path):
    plain = tiny_tokenizer()  # no "ки", no <extra_0>, no [PRM]
    lm = str(save_tiny_prm(tmp_path / "lm", "lm", plain))
    classifier = str(save_tiny_prm(tmp_path / "cls", "classifier", plain))
    value = str(save_tiny_prm(tmp_path / "value", "value", plain))
    with pytest.raises(PrmhError, match=r"splits the step mark 'ки'"):
        registry.create("prm", "math-shepherd", {"model": lm})
    with pytest.raises(PrmhError, match=r"splits the step mark '<extra_0>'"):
        registry.create("prm", "qwen-math-prm", {"model": classifier})
    with pytest.raises(PrmhError, match=r"splits the step mark '\[PRM\]'"):
        registry.create("prm", "value-head", {"model": value})
    with pytest.raises(PrmhError, match=r"no classifier head weights"):
        registry.create("prm", "qwen-math-prm", {"model": lm})
    with pytest.raises(PrmhError, match="good_token_id"):
        registry.create("prm", "asprm", {"model": lm})
    with pytest.raises(PrmhError, match="outside the vocabulary"):
        registry.create(
            "prm",
            "math-shepherd",
            {"model": lm, "step_tag": "apples", "good_token_id": 10**6, "bad_token_id": 1},
        )


def test_truncation_is_from_the_left_and_flagged(registry, checkpoints):
    full = build(registry, checkpoints, "math-shepherd")
    enc = full.recipe.encode(QUESTION, list(STEPS))
    limit = len(enc.ids) - enc.positions[1]  # keeps the marks of steps 2.. only
    short = build(registry, checkpoints, "math-shepherd", max_length=limit)
    (whole,) = score(full, STEPS)
    (cut,) = score(short, STEPS)
    assert cut.truncated and not whole.truncated and cut.num_tokens == limit
    assert len(cut.probs) == len(STEPS)
    # Step 1's mark was cut: it gets the nearest kept score, step 2's.
    assert cut.probs[0] == cut.probs[1]
    with pytest.raises(PrmhError, match="leaves no step to read"):
        score(build(registry, checkpoints, "qwen-math-prm", max_length=2), STEPS)


def test_truncated_count_reaches_the_run_record(cli, checkpoints):
    result = cli(
        "eval",
        "--json",
        "--prm",
        "math-shepherd",
        "-P",
        f"model={checkpoints['lm']}",
        "-P",
        "max_length=48",
        "--limit",
        "6",
        "-n",
        "2",
        "--agg",
        "mean",
    )
    assert result.exit_code == 0, result.output
    (table,) = json.loads(result.output)["metrics"]["tables"]
    assert (
        table["truncated_solutions"][f"math-shepherd:model={checkpoints['lm']},max_length=48"] > 0
    )


def test_known_checkpoint_ids_pick_their_recipe(registry):
    entry = registry.get("prm", "Qwen/Qwen2.5-Math-PRM-7B")
    assert entry.bind({})["model"] == "Qwen/Qwen2.5-Math-PRM-7B"
    assert "system_prompt" in entry.bind({})
    shepherd = registry.get("prm", "peiyi9979/math-shepherd-mistral-7b-prm").bind({})
    assert (shepherd["good_token_id"], shepherd["bad_token_id"]) == (648, 387)
    with pytest.raises(PrmhError, match="nor in the local Hugging Face cache"):
        registry.create("prm", "RLHFlow/Llama3.1-8B-PRM-Deepseek-Data")


def test_a_prmh_prm_directory_loads_with_its_recipe(registry, checkpoints, tmp_path):
    import shutil

    directory = shutil.copytree(checkpoints["value"], tmp_path / "my-prm")
    write_prm_config(directory, "value-head", {"separator": "ş"})
    fresh = load_registry()
    component = fresh.create("prm", str(directory))
    assert component.args["separator"] == "ş" and component.args["model"] == str(directory)
    direct = build(registry, {"value": str(directory)}, "value-head:ş")
    assert score(component.instance, STEPS)[0].probs == score(direct, STEPS)[0].probs
    # Retrained weights change the cache key.
    before = component.identity
    (directory / "model.safetensors").write_bytes((directory / "model.safetensors").read_bytes())
    import os

    os.utime(directory / "model.safetensors", ns=(1, 1))
    assert fresh.create("prm", str(directory)).identity != before


@pytest.mark.parametrize(
    "recipe",
    [
        "qwen-math-prm",
        "math-shepherd",
        "rlhflow",
        "skywork",
        "value-head",
        "value-head:layout",
        "asprm",
        "generic",
    ],
)
def test_each_recipe_runs_end_to_end_from_the_cli(cli, checkpoints, recipe):
    head, options = RECIPES[recipe]
    args = [
        "eval",
        "--json",
        "--prm",
        recipe.split(":")[0],
        "-P",
        f"model={checkpoints[head]}",
        "--limit",
        "4",
        "-n",
        "2",
        "--agg",
        "min",
    ]
    for key, value in options.items():
        args += ["-P", f"{key}={json.dumps(value) if isinstance(value, str) else value}"]
    result = cli(*args)
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    assert record["status"] == "success"
    assert record["config"]["prm"][0]["extra"]["weights"]
    cached = cli(*args)
    assert json.loads(cached.output)["metrics"]["cache"]["computed"]["score"] == 0


TEXT = "Step 1: Ava has 12 apples.\nStep 2: 12 + 7 = 19\n\nStep 3: The answer is 19.\nDone."


@pytest.mark.parametrize(
    "splitter", ["double-newline", "newline", "step-prefix", "whole", "fixed-tokens"]
)
@pytest.mark.parametrize("recipe", list(RECIPES))
def test_split_render_split_round_trip(registry, checkpoints, tokenizer, splitter, recipe):
    """Steps survive a PRM's rendering: each stands verbatim where the recipe put it, and the
    splitter finds the same steps in the recovered text."""
    split = registry.create("splitter", splitter).instance
    steps = split.split(TEXT)
    prm = build(registry, checkpoints, recipe)
    enc = prm.recipe.encode(QUESTION, steps)
    assert len(enc.positions) == len(steps)
    if hasattr(prm.recipe, "render"):
        text, spans = prm.recipe.render(QUESTION, steps)
        before = prm.recipe.mark_span[0]
        recovered = [
            text[s - before - len(step) : s - before]
            for step, (s, _) in zip(steps, spans, strict=True)
        ]
    else:  # turns and segments: each step is the text just before its read position
        recovered = []
        for step, p in zip(steps, enc.positions, strict=True):
            upto = p + 1 if recipe == "rlhflow" else p
            decoded = tokenizer.decode(enc.ids[:upto])
            recovered.append(step if step in decoded[-len(step) - 40 :] else decoded)
    assert recovered == steps
    assert split.split(split.join(recovered)) == steps


def test_missing_hf_extra_is_a_clear_error(monkeypatch, registry):
    import sys

    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(PrmhError, match=r"needs the hf extra \(transformers is missing\)"):
        registry.create("prm", "math-shepherd", {"model": "anything"})


def test_generic_recipe_from_the_readme(cli, tokenizer, tmp_path):
    """The README's 'new PRM without code' command, on a tiny checkpoint with those tokens."""
    tok = tiny_tokenizer(extra_tokens=["<step>", "good", "bad"])
    directory = save_tiny_prm(tmp_path / "my-prm", "lm", tok)
    result = cli(
        "eval",
        "--json",
        "--prm",
        "generic",
        "-P",
        f"model={directory}",
        "-P",
        'template="### Question: {question}\\n### Solution: {solution}"',
        "-P",
        'step_suffix=" <step>"',
        "-P",
        'joiner="\\n"',
        "-P",
        "read=lm",
        "-P",
        "good_token=good",
        "-P",
        "bad_token=bad",
        "--limit",
        "3",
        "-n",
        "2",
    )
    assert result.exit_code == 0, result.output
    args = json.loads(result.output)["config"]["prm"][0]["args"]
    assert args["template"] == "### Question: {question}\n### Solution: {solution}"
    assert args["step_suffix"] == " <step>"


@pytest.mark.parametrize("recipe", RECIPES)
def test_a_solution_without_steps_gets_no_scores(registry, checkpoints, recipe):
    prm = build(registry, checkpoints, recipe)
    empty, full = score(prm, (), STEPS)
    assert empty.probs == () and len(full.probs) == len(STEPS)


@pytest.mark.parametrize("recipe", ["qwen-math-prm", "math-shepherd", "value-head", "skywork"])
def test_truncations_from_one_pass_equal_truncate_and_rescore(registry, checkpoints, recipe):
    from prmh.analysis.correlation import partial_scores

    prm = registry.create(
        "prm", recipe, {"model": checkpoints[RECIPES[recipe][0]], **RECIPES[recipe][1]}
    )
    splitter = registry.create("splitter", "double-newline").instance
    text = "\n\n".join(STEPS) + "\n\nSo the total stays 19 apples in the end."
    cuts = [3, 7, 12, 20, 26, 40, 500]
    one, whole_one, tokens_one = partial_scores(prm, splitter, PROBLEM, text, cuts, True)
    many, whole_many, tokens_many = partial_scores(prm, splitter, PROBLEM, text, cuts, False)
    assert len(one) == len(many) == len(cuts) + 1
    for a, b in zip(one, many, strict=True):
        assert a == pytest.approx(b, abs=1e-5)
    assert whole_one == whole_many
    assert tokens_one < tokens_many


def test_one_pass_falls_back_when_a_solution_exceeds_max_length(registry, checkpoints):
    from prmh.analysis.correlation import partial_scores

    prm = registry.create("prm", "math-shepherd", {"model": checkpoints["lm"], "max_length": 30})
    splitter = registry.create("splitter", "double-newline").instance
    text = "\n\n".join(STEPS)
    one, _, _ = partial_scores(prm, splitter, PROBLEM, text, [5, 10, 100], True)
    many, _, _ = partial_scores(prm, splitter, PROBLEM, text, [5, 10, 100], False)
    assert one == many  # the same (truncated) scoring, not scores past the limit


def test_length_batches_bound_padded_size_and_padding():
    import random

    from prmh.plugins.prms.batching import FULL_ENOUGH, PADDING, length_batches

    rng = random.Random(0)
    for cap in (1, 512, 8192):
        lengths = [rng.randint(20, 900) for _ in range(300)]
        batches = length_batches(lengths, cap)
        assert sorted(i for b in batches for i in b) == list(range(300))
        for batch in batches:
            width = max(lengths[i] for i in batch)
            padded = width * len(batch)
            assert len(batch) == 1 or padded <= cap
            if padded > FULL_ENOUGH:
                assert 1 - sum(lengths[i] for i in batch) / padded <= PADDING
    assert [len(b) for b in length_batches([100] * 30, 1000)] == [10, 10, 10]


def test_a_linear_classifier_head_is_read_with_its_classes(registry, tokenizer, tmp_path):
    """A one-layer ``score`` head (token classification, not Qwen's MLP) loads under
    ``read=classifier``; positive classes are summed, and one the head lacks is refused."""
    from safetensors.torch import load_file

    checkpoint = save_tiny_prm(tmp_path / "lin", "linear", tokenizer, classes=3)
    options = {"model": str(checkpoint), "read": "classifier"}
    (single,) = score(registry.create("prm", "generic", options).instance, STEPS)
    options["positive_index"] = [1, 2]
    (both,) = score(registry.create("prm", "generic", options).instance, STEPS)
    weights = load_file(checkpoint / "model.safetensors")
    assert weights["score.weight"].shape[0] == 3
    assert all(0 < a < b < 1 for a, b in zip(single.probs, both.probs, strict=True))
    with pytest.raises(PrmhError, match="3 classes"):
        registry.create("prm", "generic", {**options, "positive_index": 3})


@pytest.mark.parametrize("recipe", ["qwen-math-prm", "math-shepherd", "value-head"])
def test_a_device_map_loads_the_same_prm(registry, checkpoints, recipe):
    """-P device_map=auto (accelerate spreads a large PRM over every GPU; on this CPU machine
    everything lands on the CPU): the same scores as a model on one device."""
    plain = score(build(registry, checkpoints, recipe), STEPS)
    mapped = score(build(registry, checkpoints, recipe, device_map="auto"), STEPS)
    assert list(mapped[0].probs) == pytest.approx(list(plain[0].probs), abs=1e-6)


@pytest.mark.parametrize("recipe", RECIPES)
def test_each_recipe_scores_in_bf16_as_in_fp32(registry, checkpoints, recipe):
    """dtype=bf16, what ``auto`` picks on a GPU, run here on the CPU: every recipe's head,
    reads and upcasts work in it, and its step probabilities stay within bf16's rounding of
    the fp32 ones (8 bits of mantissa: ~0.4% of a logit)."""
    steps = (STEPS, STEPS[:2])
    full = score(build(registry, checkpoints, recipe), *steps)
    half = score(build(registry, checkpoints, recipe, dtype="bf16"), *steps)
    for a, b in zip(full, half, strict=True):
        assert list(b.probs) == pytest.approx(list(a.probs), abs=0.01)


@pytest.mark.parametrize("recipe", ["qwen-math-prm", "implicit"])
def test_running_out_of_gpu_memory_halves_the_batch_and_goes_on(
    registry, checkpoints, recipe, monkeypatch, tmp_path
):
    """A forward pass over more tokens than the (simulated) GPU holds raises CUDA's
    out-of-memory error: the scorer warns, halves ``max_tokens_per_batch`` until its batches
    fit, keeps it there, and gives the scores it gives at that budget from the start; where
    even the floor does not fit, a clear error."""
    if recipe == "implicit":
        from prmh.testing import save_tiny_prm, tiny_tokenizer

        lm = str(save_tiny_prm(tmp_path / "lm", "lm", tiny_tokenizer()))
        options = {"model": lm, "reference": lm, "prefix_cache_tokens": 0}
        make = lambda **extra: registry.create("prm", "implicit", {**options, **extra}).instance  # noqa: E731
    else:
        make = lambda **extra: build(registry, checkpoints, recipe, prefix_cache_tokens=0, **extra)  # noqa: E731
    steps = [STEPS[:k] for k in range(1, 5)] * 3
    fits = score(make(max_tokens_per_batch=512), *steps)
    prm, capacity = make(max_tokens_per_batch=4096), [512]

    def small_gpu(module, args, kwargs):
        if kwargs["input_ids"].numel() > capacity[0]:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    models = {m for m in vars(prm.scorer).values() if isinstance(m, torch.nn.Module)}
    for model in models:
        model.register_forward_pre_hook(small_gpu, with_kwargs=True)
    with pytest.warns(RuntimeWarning) as caught:
        got = score(prm, *steps)
    halved = [str(w.message).split(" (")[0] for w in caught]
    assert halved == [
        f"out of GPU memory at max_tokens_per_batch={n}; going on at {n // 2}"
        for n in (4096, 2048, 1024)
    ]
    assert prm.scorer.max_tokens_per_batch == 512
    for a, b in zip(got, fits, strict=True):
        assert list(a.probs) == pytest.approx(list(b.probs), abs=1e-5)
    capacity[0] = 10
    with pytest.raises(PrmhError, match="out of GPU memory even at max_tokens_per_batch=512"):
        score(prm, *steps)


def test_the_token_budget_of_auto_is_larger_on_a_gpu(registry, checkpoints):
    """max_tokens_per_batch=auto: 32,768 padded tokens a pass on CUDA (benchmarks/gpu.py on an
    H200: 65% of the bf16 peak against 41% at 8,192), 8,192 elsewhere; a number given as text
    (a -P value) is a number."""
    from prmh.plugins.hf_models import batch_tokens

    assert batch_tokens("auto", torch.device("cuda")) == 32768
    assert batch_tokens("auto", torch.device("cpu")) == batch_tokens("auto", None) == 8192
    assert build(registry, checkpoints, "qwen-math-prm").scorer.max_tokens_per_batch == 8192
    prm = registry.create("prm", "qwen-math-prm", {"model": checkpoints["classifier"],
                                                   "max_tokens_per_batch": "64"})  # fmt: skip
    assert prm.instance.scorer.max_tokens_per_batch == 64


@pytest.mark.parametrize("recipe", ["qwen-math-prm", "math-shepherd"])
def test_the_attention_implementation_is_an_option_that_keeps_the_scores(
    registry, checkpoints, recipe
):
    """-P attention=eager / sdpa (transformers' attn_implementation; flash_attention_2 where
    flash-attn is installed) loads the model with it: the same scores (1e-5) and the same cache
    keys, since it changes only speed; one that cannot run here is a clear error."""
    steps = (STEPS, STEPS[:2])
    plain = registry.create("prm", recipe, {"model": checkpoints[RECIPES[recipe][0]]})
    for attention in ("eager", "sdpa"):
        chosen = registry.create(
            "prm", recipe, {"model": checkpoints[RECIPES[recipe][0]], "attention": attention}
        )
        assert chosen.instance.scorer.backbone.config._attn_implementation == attention
        assert chosen.identity == plain.identity
        for a, b in zip(score(chosen.instance, *steps), score(plain.instance, *steps), strict=True):
            assert list(a.probs) == pytest.approx(list(b.probs), abs=1e-5)
    with pytest.raises(PrmhError, match="attention='no-such-kernel' cannot run here"):
        build(registry, checkpoints, recipe, attention="no-such-kernel")


@pytest.mark.parametrize(
    ("index", "reason"),
    [
        ("{nope", "is not a weight index (JSONDecodeError"),
        ("[" * 100_000 + "]" * 100_000, "is not a weight index (JSONDecodeError: nested too"),
        ('{"weight_map": 5}', "is not a weight index (AttributeError"),
        ('{"weight_map": {"head.weight": "model-2.safetensors"}}', "that are not there"),
        ('{"weight_map": {"head.weight": "../other/x.safetensors"}}', "outside its folder"),
        ('{"weight_map": {"head.weight": "/etc/x.safetensors"}}', "outside its folder"),
        ('{"weight_map": {"head.weight": 3}}', "outside its folder: [3]"),
    ],
)
def test_a_broken_weight_index_is_named(tmp_path, index, reason):
    """A downloaded checkpoint's ``*.index.json`` that is not JSON, nested past json's depth,
    shaped otherwise, naming missing shards or files outside the checkpoint's folder (which
    were read): one error naming the file (a traceback before)."""
    from prmh.plugins.prms.heads import read_tensors

    (tmp_path / "model.safetensors.index.json").write_text(index)
    with pytest.raises(PrmhError, match=re.escape(reason)):
        read_tensors(tmp_path, "head.")
