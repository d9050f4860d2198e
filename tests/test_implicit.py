"""The implicit PRM: its step values are summed log-likelihood ratios, it scores prefixes as the
full pass does, `prmh train --head implicit` trains and saves it, and `prmh calibrate` gives it
quantiles."""

from __future__ import annotations

import json
import math

import pytest

torch = pytest.importorskip("torch")

from prmh import ScoreRequest  # noqa: E402
from prmh.errors import PrmhError  # noqa: E402
from prmh.labels import LabelledSolution  # noqa: E402
from prmh.plugins.arith import PROMPT, ArithTask  # noqa: E402
from prmh.plugins.training import TrainConfig, train  # noqa: E402

QUERY = "Problem: {question}\nSolution:\n"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Two tiny LMs that share a tokenizer (policy: seed 1, reference: seed 0)."""
    from prmh.testing import tiny_qwen2, tiny_tokenizer

    tokenizer = tiny_tokenizer()
    root = tmp_path_factory.mktemp("implicit")
    for name, seed in (("reference", 0), ("policy", 1)):
        tiny_qwen2(tokenizer, hidden=32, layers=2, seed=seed).save_pretrained(root / name)
        tokenizer.save_pretrained(root / name)
    return str(root / "policy"), str(root / "reference")


def build(registry, models, **options):
    policy, reference = models
    args = {"model": policy, "reference": reference, "query_template": QUERY, **options}
    return registry.create("prm", "implicit", args).instance


def log_likelihood(model, ids, start):
    with torch.no_grad():
        logp = model(input_ids=torch.tensor([ids])).logits[0].log_softmax(-1)
    return sum(logp[i - 1, ids[i]].item() for i in range(start, len(ids)))


def test_a_step_value_is_the_log_likelihood_ratio_up_to_the_step_end(registry, models):
    prm = build(registry, models, scale=[0.5], bias=[0.25])
    problem = ArithTask().problems(1)[0]
    steps = list(problem.steps[:3])
    (scores,) = prm.score([ScoreRequest(problem, tuple(steps))])
    scorer = prm.scorer
    for k in range(1, len(steps) + 1):
        text = QUERY.format(question=problem.question) + "\n\n".join(steps[:k])
        ids = scorer.tokenizer.encode(text)[:-1]  # read before the step's last token
        start = len(scorer.tokenizer.encode(QUERY.format(question=problem.question)))
        q = log_likelihood(scorer.policy, ids, start) - log_likelihood(scorer.reference, ids, start)
        assert scores.probs[k - 1] == pytest.approx(1 / (1 + math.exp(-(0.5 * q + 0.25))), 1e-5)


def test_each_step_is_read_before_the_token_holding_its_last_character():
    """The positions the recipe reads, by its definition (its docstring; a step's value is
    the log ratios summed to its last token, Yuan et al. 2024): for each step end e, the first
    token whose offsets reach e, minus one, never before the question's last token. Computed
    here by scanning the offsets (as the recipe did before its binary search), on the tiny
    world's Qwen BPE tokenizer (merges across steps, unicode, empty steps), and for offsets
    that go back (overlapping byte pieces), against the binary search."""
    import random

    from transformers import AutoTokenizer

    from prmh.plugins.prms.implicit import ImplicitRecipe, first_reaching
    from prmh.plugins.tiny import WORLD

    tokenizer = AutoTokenizer.from_pretrained(WORLD / "prm")
    recipe = ImplicitRecipe(tokenizer, QUERY)
    question = "Ava has 12 apples. How many?"
    rng = random.Random(0)
    words = ["12", "+", "7", "=", "19", "apples.", "ünï", "✓", "\n", " ", "The answer is 19."]
    for _ in range(40):
        steps = ["".join(rng.choice(words) for _ in range(rng.randint(0, 12))) for _ in range(6)]
        prefix = QUERY.format(question=question)
        text, ends = prefix, []
        for k, step in enumerate(steps):
            text += ("\n\n" if k else "") + step
            ends.append(len(text) if step else 0)
        offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)[
            "offset_mapping"
        ]
        start = next((i for i, (_, b) in enumerate(offsets) if b > len(prefix)), len(offsets))
        start = max(start, 1)
        expected = []
        for end in ends:
            if not end:
                expected.append(expected[-1] if expected else start - 1)
            else:
                last = next(i for i, (_, b) in enumerate(offsets) if b >= end)
                expected.append(max(last - 1, start - 1))
        encoded = recipe.encode(question, steps)
        assert (encoded.positions, encoded.start) == (expected, start)
    for _ in range(200):
        ends = [rng.randint(0, 30) for _ in range(rng.randint(1, 20))]
        reach = [max(ends[: i + 1]) for i in range(len(ends))]
        for end in range(32):
            scanned = next((i for i, b in enumerate(ends) if b >= end), len(ends))
            assert first_reaching(reach, end) == scanned


def test_prefixes_score_as_in_the_full_pass_and_batching_does_not_matter(registry, models):
    prm = build(registry, models, max_tokens_per_batch=64)
    problems = ArithTask().problems(4)
    requests = [ScoreRequest(p, p.steps[:k]) for p in problems for k in (1, 3, len(p.steps))]
    together = prm.score(requests)
    alone = [prm.score([r])[0] for r in requests]
    for a, b in zip(together, alone, strict=True):
        assert a.probs == pytest.approx(b.probs, abs=1e-5)
    for p in problems:
        full, *_ = prm.score([ScoreRequest(p, p.steps)])
        short, *_ = prm.score([ScoreRequest(p, p.steps[:2])])
        assert short.probs == pytest.approx(full.probs[:2], abs=1e-5)
    (empty,) = prm.score([ScoreRequest(problems[0], ("",))])
    assert empty.probs == pytest.approx([0.5])  # nothing said yet: q = 0
    p = problems[0]
    (gap,) = prm.score([ScoreRequest(p, (p.steps[0], "", p.steps[1]))])
    (plain,) = prm.score([ScoreRequest(p, p.steps[:1])])
    assert gap.probs[1] == pytest.approx(plain.probs[0], abs=1e-6)


def test_candidates_sharing_their_question_and_first_words_read_them_once(registry, models):
    """Best-of-N's candidates of one problem scored together: the tokens they share, reaching
    into the solution, go through both models once and each continues from there; every value
    equals scoring the candidate alone with the cache (and this sharing) off, which the test
    above ties to the definition."""
    from prmh.plugins.kv_cache import SHARED_LEAST, shared_groups

    cached = build(registry, models, scale=[0.5], bias=[0.25])
    plain = build(registry, models, scale=[0.5], bias=[0.25], prefix_cache_tokens=0)
    computed = []  # tokens each pass of the policy computes (not padding, not cached)
    cached.scorer.policy.register_forward_pre_hook(
        lambda m, a, kw: computed.append(
            int(kw["attention_mask"][:, -kw["input_ids"].shape[1] :].sum())
        ),
        with_kwargs=True,
    )
    problems = ArithTask().problems(2)
    shapes = ((1, ""), (2, " Sure."), (3, " Yes."))  # (steps, words after the first step)
    requests = [ScoreRequest(p, (p.steps[0] + tail, *p.steps[1:k]))
                for p in problems for k, tail in shapes]  # fmt: skip
    together = cached.score(requests)
    for a, r in zip(together, requests, strict=True):
        (b,) = plain.score([r])
        assert a.probs == pytest.approx(b.probs, abs=1e-5) and a.num_tokens == b.num_tokens
    encoded = [cached.recipe.encode(r.problem.question, list(r.steps)) for r in requests]
    groups = shared_groups([e.ids for e in encoded], SHARED_LEAST)
    assert len(groups) == 2 and all(n > encoded[g[0]].start for g, n in groups)
    # each group's prefix once; each member from its last shared token (read again) on
    saved = sum((len(g) - 1) * n - len(g) for g, n in groups)
    assert sum(computed) == sum(len(e.ids) for e in encoded) - saved


def test_a_step_search_round_reads_only_the_new_step(registry, models):
    """Steps 1..k after steps 1..k-1 (the rounds of a beam search): with the prefix cache both
    models read only the tokens from the end of the cached prefix, and every value equals the
    definition checked above by scoring from scratch (the cache off), to 1e-5."""
    cached = build(registry, models, scale=[0.5, 1.0, 2.0], bias=[0.0, 0.1, 0.2])
    plain = build(registry, models, scale=[0.5, 1.0, 2.0], bias=[0.0, 0.1, 0.2],
                  prefix_cache_tokens=0)  # fmt: skip
    read, read_plain = [], []
    for prm, log in ((cached, read), (plain, read_plain)):
        prm.scorer.policy.register_forward_pre_hook(
            lambda m, a, kw, log=log: log.append(kw["input_ids"].numel()), with_kwargs=True
        )
    for problem in ArithTask().problems(3):
        for k in range(1, len(problem.steps) + 1):
            (a,) = cached.score([ScoreRequest(problem, problem.steps[:k])])
            (b,) = plain.score([ScoreRequest(problem, problem.steps[:k])])
            flat = lambda x: [v for row in x.quantiles for v in row]  # noqa: E731
            assert flat(a) == pytest.approx(flat(b), abs=1e-5)
            assert a.num_tokens == b.num_tokens
    assert sum(read) < 0.6 * sum(read_plain)
    # The next round of several problems at once: prefixes of different lengths, one pass.
    problems = ArithTask().problems(6)[3:]
    for prm in (cached, plain):
        prm.score([ScoreRequest(p, p.steps[: 1 + i]) for i, p in enumerate(problems)])
    before = len(read)
    requests = [ScoreRequest(p, p.steps[: 2 + i]) for i, p in enumerate(problems)]
    batched, alone = cached.score(requests), plain.score(requests)
    assert len(read) == before + 1
    for a, b in zip(batched, alone, strict=True):
        flat = lambda x: [v for row in x.quantiles for v in row]  # noqa: E731
        assert flat(a) == pytest.approx(flat(b), abs=1e-5)


def test_bad_options_are_named(registry, models):
    with pytest.raises(PrmhError, match="reference"):
        registry.create("prm", "implicit", {"model": models[0]})
    with pytest.raises(PrmhError, match="1 or 3"):
        build(registry, models, scale=[1.0, 2.0], bias=[0.0, 0.0])
    with pytest.raises(PrmhError, match=r"\{question\}"):
        build(registry, models, query_template="no question")


def labelled(problems):
    """(problem, item): gold solutions, and the same with a wrong result from step 2 on."""
    items = []
    for p in problems:
        steps = p.steps
        items.append((p, LabelledSolution(p.question, steps, (1.0,) * len(steps))))
        bad = (steps[0], steps[1].replace(" = ", " = 99"), *steps[2:])
        items.append((p, LabelledSolution(p.question, bad, (1.0,) + (0.0,) * (len(bad) - 1))))
    return items


def test_training_learns_the_wrong_step_and_saves_a_loadable_prm(registry, models, tmp_path):
    items = [item for _, item in labelled(ArithTask("train").problems(24))]
    config = TrainConfig(
        head="implicit",
        reference=models[1],
        lora=False,
        epochs=6,
        learning_rate=3e-3,
        batch_size=8,
        query_template=QUERY,
        joiner="\n\n",
    )
    summary = train(items, models[1], tmp_path / "prm", config)
    assert sum(summary["losses"][-3:]) / 3 < sum(summary["losses"][:3]) / 3 - 0.1
    saved = json.loads((tmp_path / "prm" / "prmh_prm.json").read_text())
    assert saved["recipe"] == "implicit" and saved["options"]["reference"] == "reference"
    prm = registry.create("prm", str(tmp_path / "prm")).instance
    held = labelled(ArithTask().problems(8))
    scores = prm.score([ScoreRequest(p, i.steps) for p, i in held])
    good = [s.probs[1] for s, (_, i) in zip(scores, held, strict=True) if i.labels[1] == 1]
    bad = [s.probs[1] for s, (_, i) in zip(scores, held, strict=True) if i.labels[1] == 0]
    assert sum(a > b for a in good for b in bad) / (len(good) * len(bad)) > 0.8


def test_a_frozen_backbone_trains_only_the_scale_and_bias(models, tmp_path):
    config = TrainConfig(
        head="implicit",
        reference=models[1],
        freeze_backbone=True,
        epochs=2,
        learning_rate=0.05,
        batch_size=4,
        query_template=QUERY,
        joiner="\n\n",
    )
    items = [item for _, item in labelled(ArithTask("train").problems(6))]
    train(items, models[0], tmp_path / "prm", config)
    from safetensors.torch import load_file

    before = load_file(f"{models[0]}/model.safetensors")
    after = load_file(tmp_path / "prm" / "model.safetensors")
    assert all(torch.equal(before[k], after[k]) for k in before)
    options = json.loads((tmp_path / "prm" / "prmh_prm.json").read_text())["options"]
    assert options["scale"] != [0.1] and options["bias"] != [0.0]


def test_the_command_line_trains_and_calibrates_an_implicit_prm(cli, models, tmp_path):
    policy, reference = models
    common = ["-T", "split=train", "--limit", "6", "-n", "2"]
    data = tmp_path / "labels.jsonl"
    assert cli("label", *common, "-L", "n=2", "--out", str(data)).exit_code == 0
    query = PROMPT.replace("\n", "\\n")
    trained = cli(
        "train",
        "--data",
        str(data),
        "--model",
        policy,
        "--reference",
        reference,
        "--head",
        "implicit",
        "--freeze-backbone",
        "--query-template",
        query,
        "--joiner",
        "\\n\\n",
        "--max-steps",
        "3",
        "--batch-size",
        "4",
        "--out",
        str(tmp_path / "prm"),
    )
    assert trained.exit_code == 0, trained.output
    rollouts = tmp_path / "rollouts.jsonl"
    assert cli("rollout", *common, "-k", "2", "--out", str(rollouts)).exit_code == 0
    calibrated = cli(
        "calibrate",
        "--rollouts",
        str(rollouts),
        "--prm",
        str(tmp_path / "prm"),
        "--out",
        str(tmp_path / "cal"),
        "--epochs",
        "1",
        "--lr",
        "0.05",
    )
    assert calibrated.exit_code == 0, calibrated.output
    options = json.loads((tmp_path / "cal" / "prmh_prm.json").read_text())["options"]
    assert len(options["scale"]) == 3 and options["query_template"] == PROMPT
    result = cli(
        "eval",
        "--json",
        "--prm",
        str(tmp_path / "cal"),
        "--search",
        "bon-ias",
        "--limit",
        "3",
        "-n",
        "2",
    )
    assert result.exit_code == 0, result.output
    bad = cli("train", "--data", str(data), "--model", policy, "--reference", policy, "--out", "x")
    assert bad.exit_code == 2 and "--head implicit" in bad.output


def test_a_query_template_may_hold_braces():
    """``{question}`` is the template's only placeholder: LaTeX braces in it (``\\boxed{}``)
    are text (``str.format`` read them as fields and raised IndexError), and a format spec
    is no way to make the prompt a gigabyte."""
    from transformers import AutoTokenizer

    from prmh.plugins.prms.implicit import ImplicitRecipe
    from prmh.plugins.tiny import WORLD

    tokenizer = AutoTokenizer.from_pretrained(WORLD / "prm")
    template = "Problem: {question}\nPut the answer in \\boxed{}.\nSolution:\n"
    encoded = ImplicitRecipe(tokenizer, template).encode("1 + 1?", ["1 + 1 = 2.", "2"])
    text = tokenizer.decode(encoded.ids)
    assert "Problem: 1 + 1?\nPut the answer in \\boxed{}.\nSolution:\n1 + 1 = 2." in text
    with pytest.raises(PrmhError, match="must contain"):
        ImplicitRecipe(tokenizer, "{question:>99999999999}")
