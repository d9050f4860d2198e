"""Released PRMs calibrated as the calibration release does: its adapters load and score as its
own code would, on tiny checkpoints in each layout.

References, young-j-park/prm-calibration at 4abcb99: ``prm/qwen.py`` and ``prm/shepherd.py``
(``convert_to_quantile_regression_head``: the head's good-minus-bad rows, repeated for M = 3
quantiles; read through a sigmoid) and ``finetune_mse_prm.py`` (``train_main``: LoRA r=2,
alpha 32, dropout 0.1, on the head modules and q_proj/v_proj of every fourth layer
``range(3, layers, 4)``, embed_tokens requested; ``inference_load_model``: convert the head,
then ``PeftModelForCausalLM.from_pretrained``).
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from prmh import Problem, ScoreRequest  # noqa: E402
from prmh.registry import load_registry  # noqa: E402
from prmh.testing import save_tiny_prm, tiny_tokenizer  # noqa: E402

QUESTION = "Ava has 12 apples. She gets 7 more. How many apples does Ava have?"
STEPS = ("Ava starts with 12 apples.", "Getting 7 more gives 12 + 7 = 19 apples.", "So 19.")


def lora(model, targets, layers, seed):
    """The release's LoRA configuration around ``model``, with random (nonzero) B matrices so
    the adapter changes the scores, saved as the release's trainer saves it."""
    from peft import LoraConfig, PeftModelForCausalLM

    config = LoraConfig(
        r=2, lora_alpha=32, lora_dropout=0.1, bias="none", task_type="CAUSAL_LM",
        target_modules=[*targets, "q_proj", "v_proj", "embed_tokens"],
        layers_to_transform=list(range(3, layers, 4)),
    )  # fmt: skip
    peft_model = PeftModelForCausalLM(model, config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=generator) / 4)
    return peft_model.eval()


def scored(options):
    prm = load_registry().create("prm", options.pop("recipe"), options).instance
    (out,) = prm.score([ScoreRequest(Problem("p", QUESTION, "19"), STEPS)])
    return prm, out


def test_a_qwen_style_prm_with_the_releases_adapter(tmp_path):
    from safetensors.torch import load_file
    from transformers import AutoModel

    tokenizer = tiny_tokenizer(special_tokens=["<extra_0>"])
    checkpoint = save_tiny_prm(tmp_path / "qwen", "classifier", tokenizer, layers=4)
    weights = load_file(checkpoint / "model.safetensors")

    class QwenPRM(torch.nn.Module):  # Qwen2ForProcessRewardModel's names: model, score
        def __init__(self):
            super().__init__()
            self.model = AutoModel.from_pretrained(checkpoint)
            h = self.model.config.hidden_size
            self.score = torch.nn.Sequential(
                torch.nn.Linear(h, h), torch.nn.ReLU(), torch.nn.Linear(h, 2)
            )
            self.score.load_state_dict(
                {k[len("score.") :]: v for k, v in weights.items() if k.startswith("score.")}
            )

        def prepare_inputs_for_generation(self, *args, **kwargs):  # a PreTrainedModel's
            raise NotImplementedError

    release = QwenPRM().eval()
    plain_prm, plain = scored({"recipe": "qwen-math-prm", "model": str(checkpoint)})
    old = release.score[-1]  # convert_to_quantile_regression_head(3), candidate ids [1, 0]
    new = torch.nn.Linear(old.in_features, 3)
    with torch.no_grad():
        new.weight[:] = (old.weight[1] - old.weight[0]).repeat(3, 1)
        new.bias[:] = old.bias[1] - old.bias[0]
    release.score[-1] = new
    ids = plain_prm.recipe.encode(QUESTION, list(STEPS)).ids
    marks = [i for i, t in enumerate(ids) if t == tokenizer.encode("<extra_0>")[0]]
    with torch.no_grad():  # before training, every quantile is the PRM's own probability
        hidden = release.model(torch.tensor([ids])).last_hidden_state[0]
        start = torch.sigmoid(release.score(hidden))[marks]
    assert torch.allclose(start, torch.tensor(plain.probs)[:, None].expand(-1, 3), atol=1e-6)
    adapted = lora(release, ["score.0", "score.2"], 4, seed=1)
    adapted.save_pretrained(tmp_path / "adapter")
    with torch.no_grad():
        model = adapted.base_model.model
        expected = torch.sigmoid(model.score(model.model(torch.tensor([ids])).last_hidden_state))
    expected = expected[0, marks].tolist()
    options = {"recipe": "qwen-math-prm", "model": str(checkpoint)}
    _, out = scored({**options, "calibrated": str(tmp_path / "adapter")})
    assert out.quantile_levels == (0.1, 0.5, 0.9)
    assert torch.allclose(torch.tensor(out.quantiles), torch.tensor(expected), atol=1e-5)
    moved = (torch.tensor(expected) - start).abs().max()
    assert moved > 1e-3  # the adapter did something


def test_a_math_shepherd_style_prm_with_the_releases_adapter(tmp_path):
    """prm/shepherd.py: lm_head replaced by Linear(d, 3) with rows w_+ - w_-. The release
    leaves that layer's new bias at its random initial value, drawn again at every load; prmh
    starts it at 0 (the lm head has no bias), so a quantile starts as P(+)."""
    from transformers import AutoModelForCausalLM

    tokenizer = tiny_tokenizer(extra_tokens=["ки"])
    checkpoint = save_tiny_prm(tmp_path / "shepherd", "lm", tokenizer, layers=4)
    release = AutoModelForCausalLM.from_pretrained(checkpoint).eval()
    plus, minus = (tokenizer.encode(t, add_special_tokens=False)[0] for t in ("+", "-"))
    head = release.get_output_embeddings()
    new = torch.nn.Linear(head.in_features, 3)
    with torch.no_grad():
        new.weight[:] = (head.weight[plus] - head.weight[minus]).repeat(3, 1)
        new.bias.zero_()
    release.set_output_embeddings(new)
    adapted = lora(release, ["lm_head"], 4, seed=2)
    adapted.save_pretrained(tmp_path / "adapter")
    options = {"recipe": "math-shepherd", "model": str(checkpoint)}
    prm, out = scored({**options, "calibrated": str(tmp_path / "adapter")})
    ids = prm.recipe.encode(QUESTION, list(STEPS)).ids
    tags = [i for i, t in enumerate(ids) if t == tokenizer.encode("ки")[-1]]
    with torch.no_grad():
        expected = torch.sigmoid(adapted(input_ids=torch.tensor([ids])).logits)[0, tags]
    assert torch.allclose(torch.tensor(out.quantiles), expected, atol=1e-5)


def test_a_value_head_refuses_a_calibrated_adapter(tmp_path):
    from prmh.errors import PrmhError

    tokenizer = tiny_tokenizer(special_tokens=["[PRM]"])
    checkpoint = save_tiny_prm(tmp_path / "value", "value", tokenizer)
    with pytest.raises(PrmhError, match="classifier and lm heads"):
        scored({"recipe": "value-head", "model": str(checkpoint), "calibrated": str(tmp_path)})


def test_prmh_calibrate_fits_a_released_prm_from_the_releases_data(cli, tmp_path):
    """``prmh calibrate --prm qwen-math-prm -P model=...`` on the release's calibration data
    (``question``, ``reasoning_prefix``, ``success_prob``; prefixes are the first k steps
    joined by a blank line and ended by one): the saved adapter loads with ``--prm OUT``,
    starts every quantile at the PRM's own probability, and after training its median moves
    toward the observed success rates."""
    import json

    from prmh.analysis.calibration import read_rollouts

    tokenizer = tiny_tokenizer(special_tokens=["<extra_0>"])
    checkpoint = save_tiny_prm(tmp_path / "qwen", "classifier", tokenizer, layers=4)
    rows = []
    for q in range(6):
        question = f"What is {q} + {q}?"
        steps = [f"Add {q} and {q}.", f"{q} + {q} = {2 * q}.", f"The answer is {2 * q}."]
        for k in range(3):  # the release keeps no row for the whole solution
            prefix = "\n\n".join(steps[:k]) + "\n\n" if k else ""
            rows.append({"question": question, "reasoning_prefix": prefix, "success_prob": 0.9})
    data = tmp_path / "data.json"
    data.write_text(json.dumps(rows))
    converted = read_rollouts(data)
    assert len(converted) == 6 and all(len(r["steps"]) == 2 for r in converted)
    assert [v["k"] for v in converted[0]["values"]] == [0, 1, 2]
    out = tmp_path / "calibrated"
    result = cli("calibrate", "--prm", "qwen-math-prm", "-P", f"model={checkpoint}",
                 "--rollouts", str(data), "--out", str(out), "--epochs", "8", "--lr", "3e-3",
                 "--batch-size", "4")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (out / "adapter_config.json").is_file()
    plain = scored({"recipe": "qwen-math-prm", "model": str(checkpoint)})[1]
    calibrated = load_registry().create("prm", str(out)).instance
    (after,) = calibrated.score([ScoreRequest(Problem("p", "What is 2 + 2?", "4"), STEPS[:2])])
    assert after.quantile_levels == (0.1, 0.5, 0.9)
    medians = [q[1] for q in after.quantiles]
    assert all(abs(m - 0.9) < abs(p - 0.9) for m, p in zip(medians, plain.probs, strict=False))


def test_reasoneval_conversion_follows_the_release():
    """prm/reasoneval.py at 4abcb99 (``convert_to_quantile_regression_head``): every row is
    ((w_1 - w_0) + (w_2 - w_0)) / 2 of the 3-class score_head (prmh sets the bias the same
    way; the release leaves it at its random initial value)."""
    from prmh.plugins.prms.heads import to_quantiles

    torch.manual_seed(0)
    head = torch.nn.Linear(8, 3)
    converted = to_quantiles(torch, head, [1, 2])
    w, b = head.weight, head.bias
    expected = ((w[1] - w[0]) + (w[2] - w[0])) / 2
    assert converted.weight.shape == (3, 8)
    assert torch.allclose(converted.weight, expected.repeat(3, 1))
    assert torch.allclose(converted.bias, (((b[1] - b[0]) + (b[2] - b[0])) / 2).repeat(3))
