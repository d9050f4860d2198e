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
from prmh.plugins.prms.batching import Encoded
from prmh.plugins.serving import Fleet


class RemoteScorer:
    """The scorer interface of ``HFScorer`` (tokenizer, ``score``), served by a fleet."""

    prefixes = None
    quantile_levels = None
    calibrated = None

    def __init__(
        self,
        model: str,
        head: str,
        server: str | list[str],
        *,
        served_model: str | None = None,
        server_concurrency: int = 8,
        server_probabilities: bool = True,
        positive_index: int | Sequence[int] = 1,
        revision: str | None = None,
        max_tokens_per_batch: int = 8192,
        max_length: int | None = None,
        **unused: Any,
    ):
        from transformers import AutoTokenizer

        from prmh.plugins.hf_models import quiet_transformers, resolve_checkpoint

        if head not in ("lm", "classifier"):
            raise PrmhError("a PRM behind a pooling server reads a classifier or lm head.")
        for name in ("adapter", "calibrated"):
            if unused.get(name):
                raise PrmhError(f"{name} applies to a model prmh loads, not one a server runs.")
        quiet_transformers()
        self.path, self.fingerprint = resolve_checkpoint(model, revision)
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.head, self.model_name = head, served_model or model
        self.positive = [positive_index] if isinstance(positive_index, int) else positive_index
        self.probabilities = server_probabilities
        self.max_tokens_per_batch = max_tokens_per_batch
        self.max_length = max_length or 10**9
        self.fleet = Fleet(server, concurrency=server_concurrency)
        self.tag_id: int | None = None

    def token_id(self, text: str, what: str) -> int:
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        if len(ids) != 1:
            raise PrmhError(f"the tokenizer has no single token for the {what} {text!r}.")
        return ids[0]

    def use_recipe(self, recipe: Any) -> None:
        """The step tag the server pools at: the recipe's mark."""
        self.tag_id = getattr(recipe, "mark_id", None)
        if self.tag_id is None:
            raise PrmhError(
                "only tagged recipes (qwen-math-prm, math-shepherd, asprm, generic) can be "
                "served: the pooling server reads the step tag's token."
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
        answers = self.fleet.map(lambda b: self._pool([encoded[i] for i in b]), batches)
        out: list[tuple[list[float], bool, int]] = [([], False, 0)] * len(encoded)
        for b, rows in zip(batches, answers, strict=True):
            for i, values in zip(b, rows, strict=True):
                out[i] = (values, False, len(encoded[i].ids))
        return out

    def _pool(self, items: list[Encoded]) -> list[list[float]]:
        todo = [e for e in items if e.positions]
        if not todo:
            return [[] for _ in items]
        payload = {"model": self.model_name, "input": [e.ids for e in todo]}
        body = self.fleet.post("pooling", payload)
        try:
            data = [entry["data"] for entry in sorted(body["data"], key=lambda d: d["index"])]
        except (KeyError, TypeError) as e:
            raise PrmhError(f"the pooling server's answer has no data[].data: {body!r:.200}") from e
        if len(data) != len(todo):
            raise PrmhError(f"the pooling server answered {len(data)} of {len(todo)} inputs.")
        answers = iter(data)
        return [self._read(e, next(answers)) if e.positions else [] for e in items]

    def _read(self, enc: Encoded, rows: list[list[float]]) -> list[float]:
        tags = [i for i, t in enumerate(enc.ids) if t == self.tag_id]
        if len(rows) != len(tags):
            raise PrmhError(
                f"the pooling server returned {len(rows)} rows for {len(tags)} step tags; is it "
                f"serving with step_tag_id={self.tag_id}?"
            )
        index = {p: k for k, p in enumerate(tags)}
        out = []
        for p in enc.positions:
            row = [float(x) for x in rows[index[p]]]
            if not self.probabilities:
                top = max(row)
                total = sum(math.exp(x - top) for x in row)
                row = [math.exp(x - top) / total for x in row]
            out.append(row[0] if self.head == "lm" else sum(row[i] for i in self.positive))
        return out
