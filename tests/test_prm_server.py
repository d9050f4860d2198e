"""PRMs behind a pooling server: a local stand-in with vLLM's pooling API request and response
shape (``POST /v1/pooling`` ``{"model", "input": [[token ids], ...]}`` ->
``{"data": [{"index", "data": [one row per step tag]}]}``), computing STEP pooling with a tiny
transformers PRM as vLLM's pooler does (vllm-project/vllm ``model_executor/layers/pooler``:
rows at every token equal to ``step_tag_id``; a classifier's softmax, or the softmax over
``returned_token_ids`` of the LM head). The server path equals the in-process path."""

from __future__ import annotations

import contextlib
import json

import pytest

torch = pytest.importorskip("torch")

from standin import JSONHandler, serving  # noqa: E402

from prmh import Problem, ScoreRequest  # noqa: E402
from prmh.errors import PrmhError  # noqa: E402
from prmh.registry import load_registry  # noqa: E402
from prmh.testing import save_tiny_prm, tiny_tokenizer  # noqa: E402

QUESTION = "Ava has 12 apples. She gets 7 more. How many apples does Ava have?"
STEPS = ("Ava starts with 12 apples.", "Getting 7 more gives 12 + 7 = 19 apples.", "So 19.")


class Pooler:
    """STEP pooling with a tiny checkpoint, on token ids."""

    def __init__(self, directory, head, step_tag_id, returned_token_ids=None):
        from safetensors.torch import load_file
        from transformers import AutoModel, AutoModelForCausalLM

        self.head, self.tag, self.returned = head, step_tag_id, returned_token_ids
        if head == "lm":
            self.model = AutoModelForCausalLM.from_pretrained(directory).eval()
        else:
            self.model = AutoModel.from_pretrained(directory).eval()
            w = load_file(directory / "model.safetensors")
            self.mlp = lambda h: (torch.relu(h @ w["score.0.weight"].T + w["score.0.bias"])
                                  @ w["score.2.weight"].T + w["score.2.bias"])  # fmt: skip

    def rows(self, ids):
        with torch.no_grad():
            if self.head == "lm":
                logits = self.model(torch.tensor([ids])).logits[0][:, self.returned]
            else:
                logits = self.mlp(self.model(torch.tensor([ids])).last_hidden_state[0])
        probs = logits.softmax(-1)
        return [probs[i].tolist() for i, t in enumerate(ids) if t == self.tag]


class PoolingStandIn(JSONHandler):
    def do_POST(self):
        body = self.body()
        server = self.server
        with server.lock:
            server.seen.append(body)
            fail = server.failures > 0
            server.failures -= fail
        if fail or self.path != "/v1/pooling":
            return self.reply(503 if fail else 404, {"error": "no"})
        data = [
            {"index": i, "object": "pooling", "data": server.pooler.rows(ids)}
            for i, ids in enumerate(body["input"])
        ]
        self.reply(200, {"object": "list", "data": data, "usage": {}})


@pytest.fixture
def serve():
    with contextlib.ExitStack() as stack:

        def start(pooler, failures=0):
            return stack.enter_context(
                serving(PoolingStandIn, seen=[], failures=failures, pooler=pooler)
            )

        yield start


def scores(recipe, options, question=QUESTION, steps_list=(STEPS, STEPS[:2], ())):
    prm = load_registry().create("prm", recipe, options).instance
    problem = Problem("p", question, "19")
    return [list(s.probs) for s in prm.score([ScoreRequest(problem, s) for s in steps_list])]


@pytest.mark.parametrize("head", ["classifier", "lm"])
def test_the_server_path_equals_the_in_process_path(serve, tmp_path, head):
    tokenizer = tiny_tokenizer(special_tokens=["<extra_0>"], extra_tokens=["ки"])
    checkpoint = save_tiny_prm(tmp_path / head, head, tokenizer)
    if head == "classifier":
        recipe, tag, returned = "qwen-math-prm", tokenizer.encode("<extra_0>")[0], None
    else:
        recipe, tag = "math-shepherd", tokenizer.encode(" ки", add_special_tokens=False)[-1]
        returned = [tokenizer.encode(t, add_special_tokens=False)[0] for t in ("+", "-")]
    _, flaky = serve(Pooler(checkpoint, head, tag, returned), failures=1)
    steady, url = serve(Pooler(checkpoint, head, tag, returned))
    options = {"model": str(checkpoint)}
    served = {**options, "server": f"{flaky},{url}", "max_tokens_per_batch": 64}
    tricky = QUESTION + (" <extra_0>" if head == "classifier" else " ки")
    for question in (QUESTION, tricky):  # a tag in the question: a row the recipe skips
        local, remote = scores(recipe, options, question), scores(recipe, served, question)
        assert remote[2] == [] and len(remote[0]) == 3
        for a, b in zip(local, remote, strict=True):
            assert a == pytest.approx(b, abs=1e-6)
    assert steady.seen and all(body["model"] == str(checkpoint) for body in steady.seen)


def test_a_server_pooling_at_another_tag_is_a_clear_error(serve, tmp_path):
    tokenizer = tiny_tokenizer(special_tokens=["<extra_0>"])
    checkpoint = save_tiny_prm(tmp_path / "c", "classifier", tokenizer)
    _, url = serve(Pooler(checkpoint, "classifier", step_tag_id=tokenizer.eos_token_id))
    with pytest.raises(PrmhError, match="rows for 3 step tags"):
        scores("qwen-math-prm", {"model": str(checkpoint), "server": url}, steps_list=(STEPS,))
    with pytest.raises(PrmhError, match="cannot be served"):
        load_registry().create("prm", "implicit", {"model": "a", "reference": "b", "server": url})


def test_a_served_prm_from_the_cli_shares_the_in_process_cache(cli, serve, tmp_path):
    tokenizer = tiny_tokenizer(special_tokens=["<extra_0>"])
    checkpoint = save_tiny_prm(tmp_path / "c", "classifier", tokenizer)
    _, url = serve(Pooler(checkpoint, "classifier", tokenizer.encode("<extra_0>")[0]))
    args = ["eval", "--world", "sim", "--prm", "qwen-math-prm", "-P", f"model={checkpoint}",
            "--limit", "4", "-n", "2", "--json"]  # fmt: skip
    served = cli(*args, "-P", f"server={url}")
    assert served.exit_code == 0, served.output
    local = json.loads(cli(*args).output)
    assert local["metrics"]["cache"]["computed"]["score"] == 0  # the same entries


def test_vllm_offline_requests_and_answers_without_vllm(tmp_path, monkeypatch):
    """What prmh asks vLLM's offline engine (STEP pooling at the recipe's tag, the label ids
    good first for an lm head; token-id prompts) and how it reads ``PoolingRequestOutput``
    (``outputs.data``, one row per tag), with a stand-in ``vllm.LLM`` computing STEP pooling
    with the tiny model: equal to the in-process path."""
    import importlib.util
    import sys
    import types

    from prmh.plugins.prms.remote import engine_arguments, pooled_rows, prompt_of

    args = engine_arguments("m", "lm", 7, (3, 4), 0.3)
    assert args["pooler_config"] == {
        "pooling_type": "STEP", "step_tag_id": 7, "returned_token_ids": [3, 4],
    }  # fmt: skip
    assert args["runner"] == "pooling" and args["gpu_memory_utilization"] == 0.3
    assert (
        "returned_token_ids"
        not in engine_arguments("m", "classifier", 7, None, 0.3)["pooler_config"]
    )
    tensor = types.SimpleNamespace(outputs=types.SimpleNamespace(data=torch.tensor([[0.2, 0.8]])))
    assert pooled_rows(tensor) == [[pytest.approx(0.2), pytest.approx(0.8)]]

    from prmh.plugins.prms.batching import Encoded

    assert prompt_of(Encoded([5, 6, 7], [2])) == {"prompt_token_ids": [5, 6, 7]}
    tokenizer = tiny_tokenizer(extra_tokens=["ки"])
    checkpoint = save_tiny_prm(tmp_path / "lm", "lm", tokenizer)
    if importlib.util.find_spec("vllm") is None:  # no vLLM here: one clear message
        with pytest.raises(PrmhError, match="needs vLLM"):
            scores("math-shepherd", {"model": str(checkpoint), "vllm": True})
    seen = {}

    class LLM:  # the offline engine's two calls prmh makes
        def __init__(self, **kwargs):
            seen.update(kwargs)
            config = kwargs["pooler_config"]
            self.pooler = Pooler(checkpoint, "lm", config["step_tag_id"],
                                 config["returned_token_ids"])  # fmt: skip

        def encode(self, prompts, use_tqdm=False):
            return [
                types.SimpleNamespace(
                    outputs=types.SimpleNamespace(data=self.pooler.rows(p["prompt_token_ids"]))
                )
                for p in prompts
            ]

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=LLM))
    options = {"model": str(checkpoint)}
    local = scores("math-shepherd", options)
    offline = scores("math-shepherd", {**options, "vllm": True})
    for a, b in zip(local, offline, strict=True):
        assert a == pytest.approx(b, abs=1e-6)
    assert seen["model"] == str(checkpoint)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("x", "rows are not lists of numbers"),
        ([["a", 0.5]], "rows are not lists of numbers"),
        ([[]], "rows are not lists of numbers"),
        ([[0.1, 0.9]], "have 2 values; positive_index 5 is not one of them"),
    ],
)
def test_a_servers_rows_of_another_shape_are_one_message(rows, message):
    """What a pooling server answers for a solution's step tags (vLLM's pooling API gives a
    list of numbers per tag) but in another shape, or narrower than ``positive_index`` reads:
    a TypeError, ValueError or IndexError traceback before; one ``PrmhError`` now."""
    from types import SimpleNamespace

    from prmh.plugins.prms.remote import step_values

    scorer = SimpleNamespace(tag_id=7, probabilities=True, head="classifier", positive=[5])
    enc = SimpleNamespace(ids=[1, 2, 7], positions=[2])
    with pytest.raises(PrmhError, match=message):
        step_values(scorer, enc, rows)
