"""Each PRM recipe against its official reader, re-derived from the source named in each test.

The official readers are written out here from their sources (model cards and release files at
the commits named), on tiny random checkpoints: the same token ids and the same scores, to 1e-6.
Mistral's real SentencePiece tokenizer (Math-Shepherd's and PQM's backbone family) comes from
the ``mistral-common`` package, which ships it; Qwen-style merges from a tiny byte-level BPE.
"""

from __future__ import annotations

import copy
import importlib.resources
import shutil

import pytest

torch = pytest.importorskip("torch")

from prmh import Problem, ScoreRequest  # noqa: E402
from prmh.errors import PrmhError  # noqa: E402
from prmh.registry import load_registry  # noqa: E402
from prmh.testing import save_tiny_prm, tiny_tokenizer  # noqa: E402

QUESTION = "Janet has 16 eggs. She eats 3. How many are left?"
STEPS = ["Step 1: She has 16 eggs.", "Step 2: She eats 3, so 16 - 3 = 13 are left.", "Step 3: 13"]


@pytest.fixture(scope="module")
def mistral(tmp_path_factory):
    """Mistral 7B's tokenizer (v1, 32,000 pieces), as shipped in mistral-common, adding BOS."""
    from transformers import LlamaTokenizer

    source = importlib.resources.files("mistral_common") / "data" / "tokenizer.model.v1"
    folder = tmp_path_factory.mktemp("mistral")
    with importlib.resources.as_file(source) as path:
        shutil.copy(path, folder / "tokenizer.model")
    return LlamaTokenizer.from_pretrained(folder, add_bos_token=True, legacy=False)


@pytest.fixture(scope="module")
def registry():
    return load_registry()


def prmh_scores(registry, name, options, question, steps):
    prm = registry.create("prm", name, options).instance
    (out,) = prm.score([ScoreRequest(Problem("p", question, "13"), tuple(steps))])
    return prm, list(out.probs)


def lm_logits(directory, ids):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(directory).eval()
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0]


def value_rewards(directory, ids):
    from safetensors.torch import load_file
    from transformers import AutoModel

    model = AutoModel.from_pretrained(directory).eval()
    head = load_file(directory / "model.safetensors")
    with torch.no_grad():
        hidden = model(torch.tensor([ids])).last_hidden_state[0]
    w, b = head["v_head.summary.weight"], head["v_head.summary.bias"]
    return torch.sigmoid(hidden @ w[0] + b[0])


def shepherd_official(tokenizer, directory, question, steps):
    """peiyi9979/math-shepherd-mistral-7b-prm, model card usage: ``output`` is the steps each
    ending in `` ки``, joined by ``\\n``; ``input_for_prm = f"{question} {output}"``;
    ``input_id = tokenizer.encode(input_for_prm)``; ``candidate_tokens =
    tokenizer.encode(f"{good_token} {bad_token}")[1:]`` ([648, 387]); ``step_tag_id =
    tokenizer.encode(f"{step_tag}")[-1]`` (12902); scores = softmax of the logits at the
    candidates, index 0, at the positions where ``input_id == step_tag_id``."""
    output = "\n".join(f"{s} ки" for s in steps)
    ids = tokenizer.encode(f"{question} {output}")
    candidates = tokenizer.encode("+ -")[1:]
    tag = tokenizer.encode("ки")[-1]
    logits = lm_logits(directory, ids)
    probs = logits[:, candidates].softmax(-1)[:, 0]
    return ids, tag, candidates, [float(probs[i]) for i, t in enumerate(ids) if t == tag]


def test_math_shepherd_equals_the_model_card(registry, mistral, tmp_path):
    checkpoint = save_tiny_prm(tmp_path / "shepherd", "lm", mistral, model_type="mistral")
    ids, tag, candidates, expected = shepherd_official(mistral, checkpoint, QUESTION, STEPS)
    assert (tag, candidates, ids[0]) == (12902, [648, 387], mistral.bos_token_id)
    prm, got = prmh_scores(registry, "math-shepherd", {"model": str(checkpoint)}, QUESTION, STEPS)
    assert prm.recipe.encode(QUESTION, STEPS).ids == ids
    assert got == pytest.approx(expected, abs=1e-6)
    # search-and-learn's blank line between steps, on request
    blank = registry.create("prm", "math-shepherd", {"model": str(checkpoint), "joiner": "\n\n"})
    assert "ки\n\nStep 2" in blank.instance.recipe.render(QUESTION, STEPS)[0]


def test_a_step_tag_after_trailing_blanks_is_read_at_the_tags_own_token(
    registry, mistral, tmp_path
):
    """SentencePiece tokenizes ``"13.   ки"`` as ``▁▁▁ | ки`` (id 1107, not the tag 12902), a
    position the model card's reader skips. prmh drops a step's trailing blanks before the tag,
    so every step is read at 12902 and scores equal the model card on the stripped steps."""
    assert mistral.convert_ids_to_tokens(mistral.encode("13.   ки", add_special_tokens=False))[
        -2:
    ] == ["▁▁▁", "ки"]
    checkpoint = save_tiny_prm(tmp_path / "shepherd", "lm", mistral, model_type="mistral")
    padded = [f"{s}   " for s in STEPS[:2]] + [f"{STEPS[2]}\t "]
    prm, got = prmh_scores(registry, "math-shepherd", {"model": str(checkpoint)}, QUESTION, padded)
    enc = prm.recipe.encode(QUESTION, padded)
    assert [enc.ids[p] for p in enc.positions] == [12902] * 3
    _, _, _, expected = shepherd_official(mistral, checkpoint, QUESTION, STEPS)
    assert got == pytest.approx(expected, abs=1e-6)
    # a mark this tokenizer cannot read at its own id is refused, not read elsewhere
    with pytest.raises(PrmhError, match="mark's own token"):
        registry.create(
            "prm", "generic", {"model": str(checkpoint), "step_suffix": "ки", "joiner": "\n"}
        )


def test_value_head_encodes_without_bos_as_pqm(registry, mistral, tmp_path):
    """WindyLee0822/Process_Q_Model ``bon_eval_hf.py`` at c5a2a02: ``'[PRM]'`` added as a special
    token; ``answer = " [PRM]\\n".join(steps) + " [PRM]"``; ``input_ids =
    tokenizer.encode('{query}\\n{answer}'.format(...), add_special_tokens=False)``; the value
    head read (sigmoid) at every ``[PRM]`` id, with PQM's evaluation query template."""
    mistral.add_special_tokens({"additional_special_tokens": ["[PRM]"]})
    checkpoint = save_tiny_prm(tmp_path / "pqm", "value", mistral, model_type="mistral")
    template = (
        "Below is an instruction that describes a task.\nWrite a response that appropriately "
        "completes the request.\n\n### Instruction:\n{question}\n\n### Response: Let's think "
        "step by step"
    )
    query = template.format(question=QUESTION)
    answer = " [PRM]\n".join(STEPS) + " [PRM]"
    ids = mistral.encode(f"{query}\n{answer}", add_special_tokens=False)
    prm_id = mistral.encode("[PRM]", add_special_tokens=False)[-1]
    rewards = value_rewards(checkpoint, ids)
    expected = [float(rewards[i]) for i, t in enumerate(ids) if t == prm_id]
    options = {"model": str(checkpoint), "query_template": template}
    prm, got = prmh_scores(registry, "value-head", options, QUESTION, STEPS)
    assert prm.recipe.encode(QUESTION, STEPS).ids == ids and ids[0] != mistral.bos_token_id
    assert got == pytest.approx(expected, abs=1e-6)
    with_bos = registry.create("prm", "value-head", {**options, "add_special_tokens": True})
    assert with_bos.instance.recipe.encode(QUESTION, STEPS).ids == [mistral.bos_token_id, *ids]


def skywork_official(tokenizer, problem, response, step_token="\n"):
    """SkyworkAI/skywork-o1-prm-inference ``model_utils/io_utils.py`` at 719b56b,
    ``prepare_input``: ``tokenizer.encode(bos + problem + "\\n")``; the response split on the
    step token; each non-empty piece encoded on its own; the step token's id
    (``tokenizer.encode(step_token)[-1]``) after every piece, flagged for a reward."""
    ids = tokenizer.encode((tokenizer.bos_token or "") + problem + "\n")
    step_id = tokenizer.encode(step_token)[-1]
    flags = []
    for piece in response.split(step_token):
        ids += tokenizer.encode(piece) if piece else []
        ids.append(step_id)
        flags.append(len(ids) - 1)
    return ids, flags


def test_skywork_reads_after_every_line_as_the_official_code(registry, tmp_path):
    """A step with line breaks: each line is encoded alone with the step token after it, so the
    tokenizer never merges ``.\\n`` (it does here, as Qwen's does); the step's score is the
    reward after its last line. A response whose steps are joined by the step token gives the
    official ids, flags and rewards."""
    corpus = ["She has 16 eggs.\nShe eats 3.\n13 are left.\n"] * 8 + [QUESTION, *STEPS]
    tokenizer = tiny_tokenizer(corpus=corpus)
    assert len(tokenizer.encode(".\n", add_special_tokens=False)) == 1  # merged
    checkpoint = save_tiny_prm(tmp_path / "skywork", "value", tokenizer)
    steps = ["She has 16 eggs.\nShe eats 3.", "So 16 - 3 = 13.\n$$13$$", "13 are left."]
    ids, flags = skywork_official(tokenizer, QUESTION, "\n".join(steps))
    rewards = value_rewards(checkpoint, ids)
    prm, got = prmh_scores(registry, "skywork", {"model": str(checkpoint)}, QUESTION, steps)
    enc = prm.recipe.encode(QUESTION, steps)
    assert enc.ids == ids
    last_lines = [flags[1], flags[3], flags[4]]  # each step's last line
    assert enc.positions == last_lines
    assert got == pytest.approx([float(rewards[i]) for i in last_lines], abs=1e-6)


def test_rlhflow_strips_steps_as_the_official_evaluator(registry, tmp_path):
    """RLHFlow/RLHF-Reward-Modeling ``math-rm/prm_evaluate.py`` at fc39179: ``ans_list =
    [j.strip() for j in ans_list]``; turn 1 is ``prompt + " " + ans_list[0]``, turn k the k-th
    step, each answered by ``+``."""
    tokenizer = tiny_tokenizer()
    checkpoint = save_tiny_prm(tmp_path / "rlhflow", "lm", tokenizer)
    prm = registry.create("prm", "rlhflow", {"model": str(checkpoint)}).instance
    spaced = ["  " + STEPS[0] + "\n", "\n" + STEPS[1] + "  ", STEPS[2]]
    conversation = []
    for k, step in enumerate(s.strip() for s in spaced):
        content = f"{QUESTION} {step}" if k == 0 else step
        conversation += [
            {"role": "user", "content": content},
            {"role": "assistant", "content": "+"},
        ]
    official = tokenizer.apply_chat_template(conversation, tokenize=False)
    assert prm.recipe.encode(QUESTION, spaced).ids == tokenizer.encode(official)


def test_qwen_math_prm_equals_the_model_card(registry, tmp_path):
    """Qwen/Qwen2.5-Math-PRM-7B model card, as used in Jiuzhouh/UnPRM ``inference_with_prm.py``
    at 31b85ae (``step_rewards_cal_function``): messages system (the boxed prompt), user
    (question), assistant (``"<extra_0>".join(steps) + "<extra_0>"``); the chat template applied
    with ``add_generation_prompt=False`` and encoded; the 2-class ``score`` head's softmax,
    class 1, at every ``tokenizer.encode("<extra_0>")[0]``."""
    from safetensors.torch import load_file
    from transformers import AutoModel

    from prmh.plugins.prms.factories import QWEN_SYSTEM

    tokenizer = tiny_tokenizer(special_tokens=["<extra_0>"])
    checkpoint = save_tiny_prm(tmp_path / "qwen", "classifier", tokenizer)
    messages = [
        {"role": "system", "content": QWEN_SYSTEM},
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": "<extra_0>".join(STEPS) + "<extra_0>"},
    ]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    ids = tokenizer.encode(text)
    sep = tokenizer.encode("<extra_0>")[0]
    weights = load_file(checkpoint / "model.safetensors")
    model = AutoModel.from_pretrained(checkpoint).eval()
    with torch.no_grad():
        hidden = model(torch.tensor([ids])).last_hidden_state[0]
        h = torch.relu(hidden @ weights["score.0.weight"].T + weights["score.0.bias"])
        logits = h @ weights["score.2.weight"].T + weights["score.2.bias"]
    probs = logits.softmax(-1)[:, 1]
    expected = [float(probs[i]) for i, t in enumerate(ids) if t == sep]
    prm, got = prmh_scores(registry, "qwen-math-prm", {"model": str(checkpoint)}, QUESTION, STEPS)
    assert prm.recipe.encode(QUESTION, STEPS).ids == ids
    assert got == pytest.approx(expected, abs=1e-6)


def linear_head_probs(directory, ids, key):
    """Softmax of a linear head ``key`` on the backbone's last hidden state at every token."""
    from safetensors.torch import load_file
    from transformers import AutoModel

    weights = load_file(directory / "model.safetensors")
    model = AutoModel.from_pretrained(directory).eval()
    with torch.no_grad():
        hidden = model(torch.tensor([ids])).last_hidden_state[0]
    return (hidden @ weights[f"{key}.weight"].T + weights[f"{key}.bias"]).softmax(-1)


def reasoneval_official(tokenizer, question, steps, size):
    """GAIR-NLP/ReasonEval ``codes/examples.py`` at 37d5d28 (``get_results``): the prompt, the
    pad-token separator and each step followed by it, encoded whole; every token equal to
    ``tokenizer(sep)['input_ids'][-1]`` removed and recorded at ``index - 1 - count``; for 7B
    the id 1 put back in front and the first two records skipped, for 34B the first one."""
    prompt = f"Question:\n{question}\nAnswer:\nLet's think step by step.\n"
    sep = tokenizer.pad_token
    ids = tokenizer(prompt + sep + "".join(s + sep for s in steps))["input_ids"]
    sep_id = tokenizer(sep)["input_ids"][-1]
    labelled, kept = [], []
    for i, t in enumerate(ids):
        if t == sep_id:
            labelled.append(i - 1 - len(labelled))
        else:
            kept.append(t)
    if size == "7B":
        return [1, *kept], labelled[2:]
    return kept, labelled[1:]


@pytest.mark.parametrize("size", ["7B", "34B"])
def test_reasoneval_equals_the_release_example(registry, mistral, tmp_path, size):
    """ReasonEval's validity, p_neutral + p_positive of the 3-class ``score_head``, at the
    positions ``reasoneval_official`` derives; also CAL's ``prm/reasoneval.py`` at 4abcb99 (the
    same reader). 7B: Mistral's tokenizer with pad = BOS = ``<s>`` (so the BOS counts as a
    separator and is put back); 34B: a pad token that is not the BOS."""
    tokenizer = copy.deepcopy(mistral)
    tokenizer.pad_token = "<s>" if size == "7B" else "<unk>"
    checkpoint = save_tiny_prm(
        tmp_path / "re", "linear", tokenizer, model_type="mistral", classes=3,
        head_key="score_head",
    )  # fmt: skip
    from transformers import AutoTokenizer

    reloaded = AutoTokenizer.from_pretrained(checkpoint)
    ids, positions = reasoneval_official(reloaded, QUESTION, STEPS, size)
    assert len(positions) == len(STEPS)
    probs = linear_head_probs(checkpoint, ids, "score_head")
    expected = [float(probs[p, 1] + probs[p, 2]) for p in positions]
    prm, got = prmh_scores(registry, "reasoneval", {"model": str(checkpoint)}, QUESTION, STEPS)
    encoded = prm.recipe.encode(QUESTION, STEPS)
    assert (encoded.ids, encoded.positions) == (ids, positions)
    assert got == pytest.approx(expected, abs=1e-6)
    # a question holding the separator's text shifts no step (the official reader would)
    tricky = QUESTION + " <s>"
    assert len(prm.recipe.encode(tricky, STEPS).positions) == len(STEPS)


def trl_tokenize_row(tokenizer, prompt, completions, separator="\n"):
    """huggingface/trl ``trl/trainer/prm_trainer.py`` at 61c7fa2 (``PRMTrainer.tokenize_row``):
    the prompt and each completion tokenized alone without special tokens, the separator's ids
    appended to every completion, the label on each completion's last token, the BOS in front
    when the tokenizer has one. Returns the ids and the labelled positions."""
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    sep = tokenizer.encode(separator, add_special_tokens=False)
    ids = ([tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []) + prompt_ids
    positions = []
    for completion in completions:
        ids += tokenizer(completion, add_special_tokens=False)["input_ids"] + sep
        positions.append(len(ids) - 1)
    return ids, positions


@pytest.mark.parametrize("family", ["mistral", "qwen2"])
def test_a_trl_token_classification_prm_is_scored_as_trained(registry, mistral, tmp_path, family):
    """A PRM as TRL's ``PRMTrainer`` saves it: ``AutoModelForTokenClassification`` with two
    labels, written by transformers' own ``save_pretrained``. prmh's ``trl`` recipe reads
    softmax class 1 at the positions ``trl_tokenize_row`` labels, as the model's own logits
    give them. Mistral's SentencePiece tokenizer adds a BOS; the byte-level BPE has none."""
    from transformers import AutoConfig, AutoModelForTokenClassification

    tokenizer = mistral if family == "mistral" else tiny_tokenizer()
    config = AutoConfig.for_model(
        family, vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, num_labels=2,
        pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    model = AutoModelForTokenClassification.from_config(config).eval()
    model.save_pretrained(tmp_path / "trl")
    tokenizer.save_pretrained(tmp_path / "trl")
    ids, positions = trl_tokenize_row(tokenizer, QUESTION, STEPS)
    with torch.no_grad():
        probs = model(torch.tensor([ids])).logits[0].softmax(-1)
    expected = [float(probs[p, 1]) for p in positions]
    prm, got = prmh_scores(registry, "trl", {"model": str(tmp_path / "trl")}, QUESTION, STEPS)
    assert prm.recipe.encode(QUESTION, STEPS).ids == ids
    assert got == pytest.approx(expected, abs=1e-6)
