"""PRM training: it learns, it resumes exactly, it saves what --prm loads, and the documented
rollout -> label -> train -> eval flow runs from the command line."""

from __future__ import annotations

import json
import os

import pytest

torch = pytest.importorskip("torch")

from prmh import SampleRequest, ScoreRequest  # noqa: E402
from prmh.labels import LabelledSolution  # noqa: E402
from prmh.plugins.arith import ArithTask  # noqa: E402
from prmh.plugins.oracle import correct_prefix_length  # noqa: E402
from prmh.plugins.sim import SimGenerator  # noqa: E402
from prmh.plugins.training import TrainConfig, train  # noqa: E402


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A tiny causal LM whose tokenizer lacks the separator (training must add it)."""
    from prmh.testing import tiny_qwen2, tiny_tokenizer

    tokenizer = tiny_tokenizer()
    path = tmp_path_factory.mktemp("base") / "lm"
    tiny_qwen2(tokenizer, hidden=64, layers=2).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def exact_labels(split, limit, n):
    """sim solutions with the oracle's exact step labels."""
    out = []
    for p in ArithTask(split).problems(limit):
        for g in SimGenerator(slip_rate=0.15).sample([SampleRequest(p, "", n, 0)])[0]:
            steps = tuple(s for s in g.text.split("\n\n") if s)
            good = correct_prefix_length(p, steps)
            labels = tuple(float(i < good) for i in range(len(steps)))
            out.append((p, LabelledSolution(p.question, steps, labels)))
    return out


def auc(prm, held):
    scores = prm.score([ScoreRequest(p, item.steps) for p, item in held])
    pairs = [
        (s, label)
        for sc, (_, item) in zip(scores, held, strict=True)
        for s, label in zip(sc.probs, item.labels, strict=True)
    ]
    good = [s for s, label in pairs if label == 1]
    bad = [s for s, label in pairs if label == 0]
    return sum((a > b) + 0.5 * (a == b) for a in good for b in bad) / (len(good) * len(bad))


def test_training_lowers_the_loss_and_separates_held_out_steps(base, registry, tmp_path):
    items = [item for _, item in exact_labels("train", 60, 4)]
    held = exact_labels("test", 40, 2)
    config = TrainConfig(loss="bce", lora=False, epochs=3, learning_rate=1e-3, batch_size=16)
    untrained = train(items, base, tmp_path / "untrained", TrainConfig(max_steps=0))
    trained = train(items, base, tmp_path / "trained", config)
    assert untrained["added_separator"] and trained["steps"] == 45
    losses = trained["losses"]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.05
    before = auc(registry.create("prm", str(tmp_path / "untrained")).instance, held)
    after = auc(registry.create("prm", str(tmp_path / "trained")).instance, held)
    assert after > before + 0.15 and after > 0.65


def test_resume_continues_exactly(base, tmp_path):
    items = [item for _, item in exact_labels("train", 12, 2)]
    config = TrainConfig(loss="rank", lora=True, max_steps=6, batch_size=4, save_every=1)
    whole = train(items, base, tmp_path / "whole", config)

    def interrupt(step, total, loss):  # the same run, killed at step 3 (before its checkpoint)
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(items, base, tmp_path / "cut", config, on_step=interrupt)
    resumed = train(items, base, tmp_path / "cut", config, resume=True)
    assert resumed["losses"] == pytest.approx(whole["losses"], abs=1e-6)
    from safetensors.torch import load_file

    a = load_file(tmp_path / "whole" / "value_head.safetensors")
    b = load_file(tmp_path / "cut" / "value_head.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_resume_reads_a_checkpoint_as_data_never_as_code(base, tmp_path):
    """A crafted checkpoint.pt (a pickle that runs a command) is refused: nothing runs."""
    import pickle

    from prmh.errors import PrmhError
    from prmh.plugins.training import CHECKPOINT

    marker = tmp_path / "exploited"
    out = tmp_path / "out"
    out.mkdir()
    with open(out / CHECKPOINT, "wb") as f:
        pickle.dump({"modules": _Exploit(marker)}, f)
    items = [item for _, item in exact_labels("train", 4, 1)]
    with pytest.raises(PrmhError, match="is not a training checkpoint prmh can read"):
        train(items, base, out, TrainConfig(max_steps=2, batch_size=4), resume=True)
    assert not marker.exists()
    (out / CHECKPOINT).write_bytes(b"not a checkpoint")
    with pytest.raises(PrmhError, match="delete it to train from the start"):
        train(items, base, out, TrainConfig(max_steps=2, batch_size=4), resume=True)


def test_wql_training_gives_a_quantile_prm(base, registry, tmp_path):
    items = [
        LabelledSolution(i.question, i.steps, tuple(0.25 + 0.5 * x for x in i.labels))
        for _, i in exact_labels("train", 8, 2)
    ]
    train(items, base, tmp_path / "wql", TrainConfig(loss="wql", max_steps=3, batch_size=4))
    prm = registry.create("prm", str(tmp_path / "wql")).instance
    (scores,) = prm.score([ScoreRequest(ArithTask().problems(1)[0], items[0].steps)])
    assert scores.quantile_levels == (0.1, 0.5, 0.9)
    assert [q[1] for q in scores.quantiles] == pytest.approx(list(scores.probs))


def test_rollout_label_train_eval_from_the_command_line(cli, base, tmp_path):
    common = ["-T", "split=train", "--limit", "10", "-n", "2"]
    rollouts = tmp_path / "rollouts.jsonl"
    assert cli("rollout", *common, "-k", "4", "--out", str(rollouts)).exit_code == 0
    first = json.loads(rollouts.read_text().splitlines()[0])
    assert first["values"][0]["k"] == 0 and first["values"][-1]["rate"] == float(first["correct"])
    data = tmp_path / "labels.jsonl"
    labelled = cli(
        "label",
        *common,
        "--labeler",
        "mc-hard",
        "-L",
        "n=4",
        "--format",
        "math-shepherd",
        "--out",
        str(data),
    )
    assert labelled.exit_code == 0 and "rollouts" in labelled.output
    trained = cli(
        "train",
        "--data",
        str(data),
        "--model",
        base,
        "--out",
        str(tmp_path / "prm"),
        "--loss",
        "rank",
        "-L",
        "zeta=4",
        "--max-steps",
        "4",
        "--batch-size",
        "4",
    )
    assert trained.exit_code == 0, trained.output
    result = cli(
        "eval", "--json", "--prm", str(tmp_path / "prm"), "--limit", "5", "-n", "2", "--agg", "min"
    )
    assert result.exit_code == 0, result.output
    (prm,) = json.loads(result.output)["config"]["prm"]
    assert prm["name"] == str(tmp_path / "prm") and prm["args"]["separator"] == "[PRM]"
    assert "weights" in prm["extra"]


def test_the_value_head_layout_is_trained_saved_and_scored(cli, base, registry, tmp_path):
    """--query-template/--joiner/--step-suffix lay out training text; the saved PRM scores the
    same layout, and an lm head refuses them."""
    from prmh.labels import write_labels

    data = tmp_path / "labels.jsonl"
    items = [item for _, item in exact_labels("train", 4, 2)]
    write_labels(data, items, "stepwise")
    args = ["train", "--data", str(data), "--model", base, "--max-steps", "2", "--batch-size", "4"]
    layout = ["--query-template", "Q: {question}\\nA:", "--joiner", "\\n\\n"]
    layout += ["--step-suffix", "\\n[PRM]"]
    result = cli(*args, "--out", str(tmp_path / "prm"), *layout)
    assert result.exit_code == 0, result.output
    component = registry.create("prm", str(tmp_path / "prm"))
    assert component.args["joiner"] == "\n\n" and component.args["step_suffix"] == "\n[PRM]"
    text, spans = component.instance.recipe.render("Why?", ("a", "b"))
    assert text == "Q: Why?\nA:\na\n[PRM]\n\nb\n[PRM]"
    assert [text[a:b] for a, b in spans] == ["[PRM]", "[PRM]"]
    refused = cli(*args, "--out", str(tmp_path / "lm"), "--head", "lm", "--joiner", " ")
    assert refused.exit_code == 2 and "use --head value" in refused.output


@pytest.mark.parametrize("lora", [True, False])
def test_an_lm_head_trains_into_a_math_shepherd_prm(base, registry, tmp_path, lora):
    items = [item for _, item in exact_labels("train", 30, 4)]
    summary = train(
        items,
        base,
        tmp_path / "lm",
        TrainConfig(head="lm", lora=lora, epochs=2, learning_rate=1e-3, batch_size=8),
    )
    losses = summary["losses"]
    assert summary["added_separator"] and sum(losses[-3:]) < sum(losses[:3])
    component = registry.create("prm", str(tmp_path / "lm"))
    assert component.entry.factory.func.__name__ == "math_shepherd"
    assert component.args["step_tag"] == "ки"
    (scores,) = component.instance.score([ScoreRequest(ArithTask().problems(1)[0], items[0].steps)])
    assert len(scores.probs) == len(items[0].steps) and all(0 < p < 1 for p in scores.probs)
    with pytest.raises(Exception, match="wql trains three quantile outputs"):
        train(items, base, tmp_path / "x", TrainConfig(head="lm", loss="wql", max_steps=1))


def test_generator_fine_tuning_learns_the_solution_format(cli, base, registry, tmp_path):
    out = tmp_path / "generator"
    args = ["-T", "split=train", "--limit", "256", "--epochs", "4", "--lr", "3e-3"]
    result = cli("train-generator", *args, "--model", base, "--out", str(out), "--batch-size", "16")
    assert result.exit_code == 0, result.output
    first, last = (float(x) for x in result.output.split("(loss ")[1].split(")")[0].split(" -> "))
    assert last < first / 2
    (record,) = [json.loads(p.read_text()) for p in (cli.results_dir / "runs").glob("*.json")]
    assert record["config"]["command"] == "train-generator" and record["status"] == "success"
    assert record["config"]["options"]["learning_rate"] == 3e-3
    # Held-out gold solutions are more likely under the trained model than under the base.
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(out)

    def nll(path):
        model = AutoModelForCausalLM.from_pretrained(path)
        total = 0.0
        for p in ArithTask().problems(5):
            ids = tokenizer.encode(ArithTask().prompt(p) + "\n\n".join(p.steps))
            with torch.no_grad():
                total += float(
                    model(input_ids=torch.tensor([ids]), labels=torch.tensor([ids])).loss
                )
        return total / 5

    assert nll(out) < nll(base) - 1.0
    generator = registry.create("generator", "hf", {"model": str(out), "max_new_tokens": 8})
    assert generator.instance.sample([SampleRequest(ArithTask().problems(1)[0], "x", 1, 0)])
    bad = cli(
        "train-generator",
        "--task",
        "gsm8k",
        "-T",
        "data=/nonexistent",
        "--model",
        base,
        "--out",
        str(tmp_path / "x"),
    )
    assert bad.exit_code == 2


def test_a_killed_training_resumes_from_its_last_whole_checkpoint(base, tmp_path):
    """SIGKILL `prmh train` once it has checkpointed (possibly mid-write): the checkpoint is
    whole, and `--resume` finishes the run and saves a PRM that loads."""
    import signal
    import subprocess
    import sys
    import time

    from prmh.labels import write_labels
    from prmh.plugins.training import CHECKPOINT
    from prmh.registry import load_registry

    data = tmp_path / "labels.jsonl"
    write_labels(data, [item for _, item in exact_labels("train", 40, 2)], "stepwise")
    out = tmp_path / "prm"
    args = [sys.executable, "-m", "prmh", "train", "--data", str(data), "--model", str(base)]
    args += ["--out", str(out), "--max-steps", "60", "--batch-size", "2", "--save-every", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 120
    while not (out / CHECKPOINT).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    assert process.poll() is None, "training finished before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    saved = torch.load(out / CHECKPOINT, weights_only=True)
    assert 0 < saved["step"] < 60
    done = subprocess.run([*args, "--resume"], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert torch.load(out / CHECKPOINT, weights_only=True)["step"] == 60
    assert load_registry().create("prm", str(out)).instance is not None


def test_lora_prints_no_library_deprecation_to_the_user(base, tmp_path):
    """peft's ``get_peft_model`` and ``PeftModel.from_pretrained`` read
    ``is_gradient_checkpointing``, which transformers 5 deprecates with a FutureWarning
    (transformers ``modeling_utils.py``): ``prmh train`` and ``prmh calibrate`` printed it, and
    so did every eval with ``-P calibrated=``, ``-P adapter=`` or ``-G adapter=``. Other
    warnings still pass through."""
    import warnings

    from transformers import AutoModelForCausalLM

    from prmh.plugins.hf_models import with_adapter
    from prmh.plugins.training.loop import with_lora

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with_lora(AutoModelForCausalLM.from_pretrained(base), TrainConfig()).save_pretrained(
            tmp_path / "adapter"
        )
        with_adapter(AutoModelForCausalLM.from_pretrained(base), str(tmp_path / "adapter"))
        warnings.warn("still shown", FutureWarning, stacklevel=1)
    assert [str(w.message) for w in caught if w.category is FutureWarning] == ["still shown"]
