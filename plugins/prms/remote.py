"""PRMs behind servers: a tagged recipe's token ids sent to vLLM's pooling API (``POST
{base_url}/pooling``, ``{"model": NAME, "input": [[ids], ...]}``), one row back per step tag.

vLLM's STEP pooler returns, for every position whose token is the step tag, the model's output
there: Qwen2.5-Math-PRM's two classes ([bad, good], ``vllm serve Qwen/Qwen2.5-Math-PRM-7B``),
or for a Math-Shepherd-style or ASPRM model the softmax over its ``returned_token_ids``
([good, bad]; ``--override-pooler-config '{"pooling_type": "STEP", "step_tag_id": T,
"returned_token_ids": [GOOD, BAD]}'``). The recipe is applied here with the checkpoint's
tokenizer, so the server reads exactly the ids the in-process path would; a tag that also
appears in the question yields a row the recipe does not read, and is skipped. Whether a
server's rows are probabilities or logits depends on its vLLM version and model class
(``server_probabilities=false`` applies the softmax here). The servers form a
``prmh.plugins.serving.Fleet``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from prmh.errors import PrmhError
from prmh.options import is_number
from prmh.plugins.prms.batching import Encoded
from prmh.plugins.serving import Fleet


class PooledScorer:
    """The scorer interface of ``HFScorer`` (``tokenizer``, ``token_id``, ``score``) for a
    model that runs elsewhere and answers with a row per step tag; ``_rows`` fetches them."""

    prefixes = None
    quantile_levels = None
    calibrated = None

    def __init__(
        self,
        model: str,
        head: str,
        *,
        positive_index: int | Sequence[int] = 1,
        probabilities: bool = True,
        revision: str | None = None,
        max_tokens_per_batch: int | str = "auto",
        max_length: int | None = None,
        adapter: str | None = None,
        calibrated: str | None = None,
    ):
        from transformers import AutoTokenizer

        from prmh.plugins.hf_models import batch_tokens, quiet_transformers, resolve_checkpoint

        if head not in ("lm", "classifier"):
            raise PrmhError("a PRM pooled by vLLM reads a classifier or lm head.")
        if adapter or calibrated:
            raise PrmhError("adapters apply to a model prmh loads, not one vLLM runs.")
        quiet_transformers()
        self.path, self.fingerprint = resolve_checkpoint(model, revision)
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.head = head
        self.positive = [positive_index] if isinstance(positive_index, int) else positive_index
        self.probabilities = probabilities
        self.max_tokens_per_batch = batch_tokens(max_tokens_per_batch, None)
        self.max_length = max_length or 10**9
        self.tag_id: int | None = None
        self.good_bad: tuple[int, int] | None = None

    def token_id(self, text: str, what: str) -> int:
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        if len(ids) != 1:
            raise PrmhError(f"the tokenizer has no single token for the {what} {text!r}.")
        return ids[0]

    def use_recipe(self, recipe: Any) -> None:
        """The step tag vLLM pools at: the recipe's mark (and its label tokens)."""
        self.tag_id = getattr(recipe, "mark_id", None)
        self.good_bad = getattr(recipe, "good_bad", None)
        if self.tag_id is None:
            raise PrmhError(
                "only tagged recipes (qwen-math-prm, math-shepherd, asprm, generic) can be "
                "pooled by vLLM: its STEP pooler reads the step tag's token."
            )

    def score(
        self, encoded: Sequence[Encoded], good_bad: tuple[int, int] | None = None
    ) -> list[tuple[list[float], bool, int]]:
        batches, size, batch = [], 0, []
        for i, e in enumerate(encoded):
            if batch and size + len(e.ids) > self.max_tokens_per_batch:
                batches.append(batch)
                batch, size = [], 0
            batch.append(i)
            size += len(e.ids)
        if batch:
            batches.append(batch)
        answers = self._batches([[encoded[i] for i in b] for b in batches])
        out: list[tuple[list[float], bool, int]] = [([], False, 0)] * len(encoded)
        for b, rows in zip(batches, answers, strict=True):
            for i, values in zip(b, rows, strict=True):
                out[i] = (values, False, len(encoded[i].ids))
        return out

    def _batches(self, batches: list[list[Encoded]]) -> list[list[list[float]]]:
        return [self._values(b) for b in batches]

    def _values(self, items: list[Encoded]) -> list[list[float]]:
        todo = [e for e in items if e.positions]
        rows = iter(self._rows(todo) if todo else [])
        return [step_values(self, e, next(rows)) if e.positions else [] for e in items]

    def _rows(self, items: list[Encoded]) -> list[list[list[float]]]:
        raise NotImplementedError


def step_values(scorer: PooledScorer, enc: Encoded, rows: list[list[float]]) -> list[float]:
    """Each step's score from the rows pooled at every step tag of ``enc`` (a tag in the
    question gives a row the recipe does not read)."""
    tags = [i for i, t in enumerate(enc.ids) if t == scorer.tag_id]
    if not isinstance(rows, list) or not all(
        isinstance(r, list) and r and all(is_number(x) for x in r) for r in rows
    ):
        raise PrmhError(f"the server's rows are not lists of numbers: {rows!r:.200}")
    if len(rows) != len(tags):
        raise PrmhError(
            f"vLLM returned {len(rows)} rows for {len(tags)} step tags; is it pooling with "
            f"step_tag_id={scorer.tag_id}?"
        )
    index = {p: k for k, p in enumerate(tags)}
    out = []
    for p in enc.positions:
        row = [float(x) for x in rows[index[p]]]
        if not scorer.probabilities:
            top = max(row)
            total = sum(math.exp(x - top) for x in row)
            row = [math.exp(x - top) / total for x in row]
        wanted = [0] if scorer.head == "lm" else scorer.positive
        if max(wanted) >= len(row):
            raise PrmhError(
                f"the server's rows have {len(row)} values; positive_index {max(wanted)} is "
                "not one of them (set -P positive_index)."
            )
        out.append(sum(row[i] for i in wanted))
    return out


class RemoteScorer(PooledScorer):
    """Rows from vLLM pooling servers (``POST {base_url}/pooling``), over a fleet."""

    def __init__(
        self,
        model: str,
        head: str,
        server: str | list[str],
        *,
        served_model: str | None = None,
        server_concurrency: int = 8,
        server_probabilities: bool = True,
        **options: Any,
    ):
        known = {k: options[k] for k in POOLED_OPTIONS if k in options}
        super().__init__(model, head, probabilities=server_probabilities, **known)
        self.model_name = served_model or model
        self.fleet = Fleet(server, concurrency=server_concurrency)

    def _batches(self, batches: list[list[Encoded]]) -> list[list[list[float]]]:
        return self.fleet.map(self._values, batches)

    def _rows(self, items: list[Encoded]) -> list[list[list[float]]]:
        payload = {"model": self.model_name, "input": [e.ids for e in items]}
        body = self.fleet.post("pooling", payload)
        try:
            data = [entry["data"] for entry in sorted(body["data"], key=lambda d: d["index"])]
        except (KeyError, TypeError) as e:
            raise PrmhError(f"the pooling server's answer has no data[].data: {body!r:.200}") from e
        if len(data) != len(items):
            raise PrmhError(f"the pooling server answered {len(data)} of {len(items)} inputs.")
        return data


POOLED_OPTIONS = (
    "positive_index", "revision", "max_tokens_per_batch", "max_length", "adapter", "calibrated",
)  # fmt: skip


class VLLMScorer(PooledScorer):
    """Rows from vLLM offline on this machine's GPUs (``-P vllm=true``): ``LLM.encode`` of the
    recipe's token ids with STEP pooling at the recipe's tag. What prmh asks for
    (``engine_arguments``, ``prompt_of``) and how it reads the answers (``pooled_rows``) are
    plain functions tested without vLLM; the engine is built once the recipe is known."""

    def __init__(
        self, model: str, head: str, *, gpu_memory_utilization: float = 0.4, **options: Any
    ):
        known = {k: options[k] for k in POOLED_OPTIONS if k in options}
        super().__init__(model, head, **known)
        self.memory = gpu_memory_utilization
        self.llm: Any = None

    def use_recipe(self, recipe: Any) -> None:
        super().use_recipe(recipe)
        try:
            from vllm import LLM
        except ImportError as e:
            raise PrmhError(
                "-P vllm=true needs vLLM: pip install 'prmh[vllm]' on a GPU machine."
            ) from e
        arguments = engine_arguments(self.path, self.head, self.tag_id, self.good_bad, self.memory)
        try:
            self.llm = LLM(**arguments)
        except TypeError:  # vLLM before the pooling runner: a reward task, an override
            legacy = {k: v for k, v in arguments.items() if k not in ("runner", "pooler_config")}
            self.llm = LLM(
                **legacy, task="reward", override_pooler_config=arguments["pooler_config"]
            )

    def _rows(self, items: list[Encoded]) -> list[list[list[float]]]:
        outputs = self.llm.encode([prompt_of(e) for e in items], use_tqdm=False)
        return [pooled_rows(o) for o in outputs]


def engine_arguments(
    path: Any, head: str, tag_id: int | None, good_bad: tuple[int, int] | None, memory: float
) -> dict[str, Any]:
    """``vllm.LLM`` keyword arguments: the pooling runner, STEP pooling at the step tag (and,
    for a label-token head, its two label ids: softmax over them, good first)."""
    pooler: dict[str, Any] = {"pooling_type": "STEP", "step_tag_id": tag_id}
    if head == "lm":
        if good_bad is None:
            raise PrmhError("an lm-head PRM needs its two label tokens to pool.")
        pooler["returned_token_ids"] = list(good_bad)
    return {
        "model": str(path),
        "runner": "pooling",
        "pooler_config": pooler,
        "gpu_memory_utilization": memory,
        "enable_prefix_caching": False,
    }


def prompt_of(enc: Encoded) -> dict[str, Any]:
    """A token-ids prompt: vLLM reads exactly the ids the recipe encoded."""
    return {"prompt_token_ids": list(enc.ids)}


def pooled_rows(output: Any) -> list[list[float]]:
    """The rows of a vLLM ``PoolingRequestOutput``: ``outputs.data``, one row per step tag."""
    data = output.outputs.data
    rows = data.tolist() if hasattr(data, "tolist") else list(data)
    return [row if isinstance(row, list) else [row] for row in rows]
