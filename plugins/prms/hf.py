"""The transformers back end shared by every PRM recipe: load, batch, one pass, read scores.

A recipe turns (question, steps) into token ids and one read position per step; this module
runs the model once per solution and reads a probability at each position with one of three
heads:

- ``lm``: softmax over two token logits (good, bad) of the language-model head; only those two
  rows of the output embedding are applied, never the whole vocabulary;
- ``classifier``: softmax over the classes of a ``score`` head on the last hidden state, summed
  over the positive class(es): an MLP (Linear, ReLU, Linear(2)) as in Qwen2.5-Math-PRM, or one
  Linear layer with any number of classes (TRL's token classification, ReasonEval's
  ``score_head``), loaded from the checkpoint without remote code;
- ``value``: a linear value head (TRL's ``v_head.summary``) and a sigmoid.

Solutions are sorted by length and batched under a cap on padded tokens, with right padding, so
a causal model scores each step exactly as if its prefix were scored alone. A solution longer
than ``max_length`` is truncated from the left (the start of the prompt goes first, every step
tag is kept while the steps fit); a step whose read position was cut gets the score of the
nearest kept one, and the result is flagged ``truncated``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prmh import ScoreRequest, StepScores
from prmh.errors import PrmhError
from prmh.plugins.hf_models import (
    cache_keyword,
    cache_of,
    device_and_dtype,
    quiet_transformers,
    resolve_checkpoint,
)
from prmh.plugins.kv_cache import (
    PrefixCache,
    layers_of,
    row_of,
    run_tails,
    shared_prefix,
    tail_tokens,
)
from prmh.plugins.prms.batching import Encoded, length_batches, pack

HEADS = ("lm", "classifier", "value")
QUANTILE_LEVELS = (0.1, 0.5, 0.9)
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def read_tensors(directory: Path, prefix: str) -> dict[str, Any]:
    """Every tensor whose name starts with ``prefix`` in a checkpoint's weight files."""
    from safetensors import safe_open

    files: list[Path] = []
    for index in directory.glob("*.index.json"):
        files += [directory / f for f in set(json.loads(index.read_text())["weight_map"].values())]
    files += [directory / f for f in WEIGHT_FILES if (directory / f).is_file()]
    files += sorted(p for p in directory.glob("*.safetensors") if p not in files)
    found: dict[str, Any] = {}
    for file in dict.fromkeys(files):
        if file.suffix == ".safetensors":
            with safe_open(str(file), framework="pt") as f:
                found.update(
                    {k[len(prefix) :]: f.get_tensor(k) for k in f.keys() if k.startswith(prefix)}
                )
        elif file.suffix == ".bin":
            import torch

            state = torch.load(file, map_location="cpu", weights_only=True)
            found.update({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})
    return found


class HFScorer:
    """Loads a checkpoint for one head and scores encoded solutions in batches."""

    def __init__(
        self,
        model: str,
        head: str,
        *,
        revision: str | None = None,
        dtype: str = "auto",
        device: str = "auto",
        adapter: str | None = None,
        head_key: str | None = None,
        positive_index: int | Sequence[int] = 1,
        max_tokens_per_batch: int = 8192,
        max_length: int | None = None,
        prefix_cache_tokens: int = 65536,
    ):
        if head not in HEADS:
            raise PrmhError(f"unknown PRM head {head!r}; heads are: {', '.join(HEADS)}.")
        if max_tokens_per_batch < 1:
            raise PrmhError("max_tokens_per_batch must be at least 1.")
        import torch
        from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

        quiet_transformers()
        self.path, self.fingerprint = resolve_checkpoint(model, revision)
        self.device, self.dtype = device_and_dtype(device, dtype)
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        if not self.tokenizer.is_fast:
            raise PrmhError(
                f"the tokenizer of {model!r} is not a fast tokenizer; prmh needs character "
                "offsets to find step positions. Convert it (tokenizer.json) first."
            )
        self.head = head
        self.positive = (
            list(positive_index) if isinstance(positive_index, Sequence) else [positive_index]
        )
        self.quantile_levels: tuple[float, ...] | None = None
        self.max_tokens_per_batch = max_tokens_per_batch
        self.prefixes = PrefixCache(prefix_cache_tokens) if prefix_cache_tokens > 0 else None
        if head == "lm":
            self.model = AutoModelForCausalLM.from_pretrained(self.path, dtype=self.dtype)
            self.backbone = self.model.get_decoder()
        else:
            self.backbone = AutoModel.from_pretrained(self.path, dtype=self.dtype)
            layer = self._head_layer(torch, model, head, head_key)
            self.model = head_model(self.backbone, layer, head).to(self.dtype)
        if adapter:
            from peft import PeftModel

            # LoRA layers are injected in place, so self.backbone stays the adapted backbone.
            self.model = PeftModel.from_pretrained(self.model, adapter)
        self.model.to(self.device).eval()
        limit = getattr(self.backbone.config, "max_position_embeddings", None) or 4096
        self.max_length = min(max_length or limit, limit)

    def _head_layer(self, torch: Any, model: str, head: str, head_key: str | None) -> Any:
        """The classifier or value head, loaded from the checkpoint's tensors (a value head
        with three outputs is a calibrated quantile head: 0.1, 0.5, 0.9)."""
        key = head_key or ("score." if head == "classifier" else "v_head.summary.")
        weights = read_tensors(self.path, key if key.endswith(".") else key + ".")
        if not weights:
            raise PrmhError(
                f"checkpoint {model!r} has no {head} head weights named {key}*; it is not a "
                f"{head}-head PRM, or its head is stored under another name (-P head_key=...)."
            )
        hidden = self.backbone.config.hidden_size
        if head == "classifier" and "weight" not in weights:
            layer = torch.nn.Sequential(
                torch.nn.Linear(hidden, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 2)
            )
        elif head == "classifier":
            classes = weights["weight"].shape[0]
            if not all(0 <= i < classes for i in self.positive):
                raise PrmhError(
                    f"the classifier head of {model!r} has {classes} classes; positive_index "
                    f"{self.positive} is not among them."
                )
            layer = torch.nn.Linear(hidden, classes, bias="bias" in weights)
        else:
            outputs = weights["weight"].shape[0] if "weight" in weights else 1
            if outputs not in (1, len(QUANTILE_LEVELS)):
                raise PrmhError(f"a value head has 1 or 3 outputs, not {outputs}.")
            layer = torch.nn.Linear(hidden, outputs)
            if outputs > 1:
                self.quantile_levels = QUANTILE_LEVELS
        try:
            layer.load_state_dict(weights)
        except RuntimeError as e:
            raise PrmhError(f"the {head} head of {model!r} does not fit: {e}") from e
        return layer

    def token_id(self, text: str, what: str) -> int:
        """The id of ``text`` when it is a single token; an error that names it otherwise."""
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        if len(ids) != 1:
            pieces = self.tokenizer.convert_ids_to_tokens(ids)
            raise PrmhError(
                f"the tokenizer of {str(self.path)!r} has no single token for the {what} "
                f"{text!r} (it becomes {pieces}); this checkpoint does not fit the recipe, or "
                "give the token's id in the options."
            )
        return ids[0]

    def score(
        self, encoded: Sequence[Encoded], good_bad: tuple[int, int] | None = None
    ) -> list[tuple[list[float], bool, int]]:
        """Per solution: step probabilities, whether it was truncated, tokens read (all of
        them, even when a cached prefix spared reading some: the cost of scoring it alone)."""
        import torch

        results: list[tuple[list[float], bool, int] | None] = [None] * len(encoded)
        for i, e in enumerate(encoded):
            if not e.positions:  # a solution without steps: nothing to read, no model call
                results[i] = ([], False, 0)
        prepared = [self._truncate(e) if e.positions else None for e in encoded]
        head, caching = self._head_rows(good_bad), self.prefixes is not None
        hits = {}
        for i, p in enumerate(prepared):
            if p is not None and not p[1] and caching:
                hit = self.prefixes.find(p[0].ids, p[0].positions)
                if hit is not None and all(q in hit[0].state[1] for q in p[0].positions
                                           if q < hit[1]):  # fmt: skip
                    hits[i] = hit
        todo = [i for i, p in enumerate(prepared) if p is not None and i not in hits]
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        lengths = [len(prepared[i][0].ids) for i in todo]
        with torch.inference_mode():
            for chosen in length_batches(lengths, self.max_tokens_per_batch):
                batch = [todo[j] for j in chosen]
                rows = [prepared[i][0] for i in batch]
                ids, mask, _, _ = pack(torch, rows, pad, self.device)
                out = self.backbone(input_ids=ids, attention_mask=mask, use_cache=caching)
                for row, i in enumerate(batch):
                    enc, truncated, keep = prepared[i]
                    values = self._reads(torch, out.last_hidden_state[row], enc.positions, head)
                    results[i] = ([values[k] for k in keep], truncated, len(enc.ids))
                    if caching and not truncated:
                        kv = row_of(layers_of(cache_of(out)), row, len(enc.ids))
                        self._remember(enc, kv, dict(zip(enc.positions, values, strict=True)))
            hit = list(hits)
            for chosen in length_batches(
                [len(prepared[i][0].ids) for i in hit], self.max_tokens_per_batch
            ):
                batch = [hit[j] for j in chosen]
                for i, result in zip(batch, self._extend(torch, prepared, hits, batch, pad, head),
                                     strict=True):  # fmt: skip
                    results[i] = result
        return [r for r in results if r is not None]

    def _head_rows(self, good_bad: tuple[int, int] | None) -> tuple[Any, Any]:
        """The LM head's (good, bad) rows and bias, for the ``lm`` head; else (None, None)."""
        if self.head != "lm":
            return None, None
        assert good_bad is not None
        out = self.model.get_output_embeddings()
        bias = out.bias[list(good_bad)] if getattr(out, "bias", None) is not None else None
        return out.weight[list(good_bad)], bias

    def _reads(self, torch: Any, hidden: Any, positions: Sequence[int], head: tuple) -> list:
        where = torch.tensor(positions, dtype=torch.long, device=self.device)
        return self._read(hidden[where], *head).float().cpu().tolist()

    def _extend(self, torch, prepared, hits, batch, pad, head) -> list[tuple]:
        """Score solutions from cached ones that share their first n tokens: only the rest
        goes through the model, all of ``batch`` in one pass."""
        items = [(hits[i][0].state[0], hits[i][1], prepared[i][0].ids[hits[i][1] :])
                 for i in batch]  # fmt: skip
        out, kvs = run_tails(torch, self.backbone, items, pad, self.device)
        results = []
        for row, i in enumerate(batch):
            enc, (entry, n) = prepared[i][0], hits[i]
            new = [p - n for p in enc.positions if p >= n]
            fresh = iter(self._reads(torch, out.last_hidden_state[row], new, head))
            values = [entry.state[1][p] if p < n else next(fresh) for p in enc.positions]
            self._remember(enc, kvs[row], dict(zip(enc.positions, values, strict=True)))
            results.append((values, False, len(enc.ids)))
        return results

    def _remember(self, enc: Encoded, kv: list, values: dict[int, Any]) -> None:
        self.prefixes.add(enc.ids, enc.positions, (kv, values))

    def score_variants(
        self, full: Encoded, variants: Sequence[Encoded], good_bad: tuple[int, int] | None = None
    ) -> tuple[list[float], list[list[float]]]:
        """Scores of a solution and of variants of it that share a token prefix with it (its
        truncations), from one forward pass: each variant reuses the full pass's KV cache up to
        the tokens they share and runs only its own tail. Equal to scoring each variant alone,
        for a causal model. No truncation to ``max_length`` is applied here."""
        import torch

        rows = bias = None
        if self.head == "lm":
            out = self.model.get_output_embeddings()
            rows = out.weight[list(good_bad)]
            bias = out.bias[list(good_bad)] if getattr(out, "bias", None) is not None else None

        def read(hidden: Any, positions: list[int]) -> list[float]:
            if not positions:
                return []
            where = torch.tensor(positions, dtype=torch.long, device=self.device)
            return self._read(hidden[0, where], rows, bias).float().cpu().tolist()

        with torch.inference_mode():
            output = self.backbone(
                input_ids=torch.tensor([full.ids], device=self.device), use_cache=True
            )
            hidden, cache = output.last_hidden_state, cache_of(output)
            scores = read(hidden, full.positions)
            shared = [shared_prefix(full.ids, v.ids) for v in variants]
            results: list[list[float]] = [[] for _ in variants]
            for i in sorted(range(len(variants)), key=lambda i: -shared[i]):
                v, n = variants[i], shared[i]
                _crop(cache, n)  # only shrinks: variants go from the longest shared prefix down
                tail = self.backbone(
                    input_ids=torch.tensor([v.ids[n:]], device=self.device),
                    use_cache=True,
                    **{cache_keyword(self.backbone): cache},
                    position_ids=torch.arange(n, len(v.ids), device=self.device)[None],
                ).last_hidden_state
                _crop(cache, n)
                before = [p for p in v.positions if p < n]
                after = [p - n for p in v.positions if p >= n]
                results[i] = read(hidden, before) + read(tail, after)
        return scores, results

    def _read(self, h: Any, rows: Any, bias: Any) -> Any:
        import torch

        if self.head == "lm":
            logits = h @ rows.T + (bias if bias is not None else 0)
            return torch.softmax(logits.float(), dim=-1)[:, 0]
        out = self.model.head(h)
        if self.head == "classifier":
            return torch.softmax(out.float(), dim=-1)[:, self.positive].sum(-1)
        probs = torch.sigmoid(out.float())
        return probs if self.quantile_levels else probs.squeeze(-1)

    def _truncate(self, enc: Encoded) -> tuple[Encoded, bool, list[int]]:
        """Keep the last ``max_length`` tokens; map each step to a kept read position."""
        cut = len(enc.ids) - self.max_length
        if cut <= 0:
            return enc, False, list(range(len(enc.positions)))
        kept = [p - cut for p in enc.positions if p >= cut]
        if not kept:
            raise PrmhError(
                f"a solution of {len(enc.ids)} tokens leaves no step to read within "
                f"max_length={self.max_length}; raise max_length."
            )
        first = len(enc.positions) - len(kept)
        keep = [max(0, k - first) for k in range(len(enc.positions))]
        return Encoded(enc.ids[cut:], kept), True, keep


def _crop(cache: Any, length: int) -> None:
    """Keep the first ``length`` positions of a KV cache (a negative crop removes that many
    tokens, in every transformers version)."""
    remove = cache.get_seq_length() - length
    if remove > 0:
        cache.crop(-remove)


def head_model(backbone: Any, layer: Any, head: str) -> Any:
    """Backbone plus head as one module, named as in the checkpoints (``model`` with ``score``
    or ``v_head.summary``), so PEFT adapters trained on those names apply."""
    import torch

    class HeadModel(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = backbone
            if head == "classifier":
                self.score = layer
            else:
                self.v_head = torch.nn.Module()
                self.v_head.summary = layer

        @property
        def head(self) -> Any:
            return self.score if head == "classifier" else self.v_head.summary

    return HeadModel()


def to_step_scores(
    result: tuple[list, bool, int],
    started: float,
    count: int,
    levels: tuple[float, ...] | None = None,
    tail: int | None = None,
) -> StepScores:
    """Wrap a scorer result; with quantile heads the probability is the median quantile."""
    values, truncated, tokens = result
    quantiles = None
    if levels:
        quantiles = tuple(tuple(v) for v in values)
        values = [v[levels.index(0.5)] for v in values]
    return StepScores(
        tuple(values),
        quantiles=quantiles,
        quantile_levels=levels if quantiles is not None else None,
        num_tokens=tokens,
        truncated=truncated,
        tail_tokens=None if truncated else tail,
        seconds=(time.perf_counter() - started) / max(1, count),
    )


def score_requests(
    scorer: HFScorer, recipe: Any, requests: Sequence[ScoreRequest]
) -> list[StepScores]:
    """Encode with the recipe, score in one pass each, and wrap as StepScores."""
    started = time.perf_counter()
    encoded = [recipe.encode(r.problem.question, list(r.steps)) for r in requests]
    results = scorer.score(encoded, getattr(recipe, "good_bad", None))
    return [
        to_step_scores(r, started, len(requests), scorer.quantile_levels, tail_tokens(scorer, e))
        for r, e in zip(results, encoded, strict=True)
    ]
