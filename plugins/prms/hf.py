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

A head with three outputs read through a sigmoid gives quantiles (0.1, 0.5, 0.9): a value head
prmh calibrated, or a classifier or lm head converted as the calibration release does when
``calibrated`` names its PEFT adapter (``prmh.plugins.prms.heads``).

Solutions are sorted by length and batched under a cap on padded tokens, with right padding, so
a causal model scores each step exactly as if its prefix were scored alone. A solution longer
than ``max_length`` is truncated from the left (the start of the prompt goes first, every step
tag is kept while the steps fit); a step whose read position was cut gets the score of the
nearest kept one, and the result is flagged ``truncated``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prmh.errors import PrmhError
from prmh.plugins.hf_models import (
    auto_precision,
    batch_tokens,
    cache_keyword,
    cache_of,
    device_and_dtype,
    loadable_checkpoint,
    pretrained,
    quiet_transformers,
    with_adapter,
)
from prmh.plugins.kv_cache import (
    SHARED_LEAST,
    Entry,
    PrefixCache,
    layers_of,
    row_of,
    run_tails,
    shared_groups,
    shared_prefix,
)
from prmh.plugins.prms.batching import Encoded, length_batches, pack
from prmh.plugins.prms.heads import QUANTILE_LEVELS, head_model, load_head, to_quantiles

HEADS = ("lm", "classifier", "value")


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
        max_tokens_per_batch: int | str = "auto",
        max_length: int | None = None,
        prefix_cache_tokens: int = 65536,
        calibrated: str | None = None,
        device_map: str | None = None,
        attention: str = "auto",
    ):
        if head not in HEADS:
            raise PrmhError(f"unknown PRM head {head!r}; heads are: {', '.join(HEADS)}.")
        import torch
        from transformers import AutoTokenizer

        quiet_transformers()
        self.path, self.fingerprint = loadable_checkpoint(model, revision, "-P model=PATH")
        self.device, self.dtype = device_and_dtype(device, dtype)
        self.precision = auto_precision(device, dtype)
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
        self.max_tokens_per_batch = batch_tokens(max_tokens_per_batch, self.device)
        self.prefixes = PrefixCache(prefix_cache_tokens) if prefix_cache_tokens > 0 else None
        self.calibrated = calibrated
        self.device_map = device_map  # a model spread over devices by accelerate ("auto")
        self.attention = attention
        self._load(torch, model, head_key)
        if device_map:  # inputs go where the embeddings are
            self.device = self.backbone.get_input_embeddings().weight.device
        self._adapt(adapter)
        if head != "lm":
            self._adapt(calibrated)
        limit = getattr(self.backbone.config, "max_position_embeddings", None) or 4096
        self.max_length = min(max_length or limit, limit)

    def _load(self, torch: Any, model: str, head_key: str | None) -> None:
        """The backbone, and the model read: a causal LM, or the backbone with its head."""
        from transformers import AutoModel, AutoModelForCausalLM

        load = {"dtype": self.dtype, **({"device_map": self.device_map} if self.device_map else {})}
        if self.head == "lm":
            self.model = pretrained(AutoModelForCausalLM, self.path, self.attention, **load)
            self.backbone = self.model.get_decoder()
            return
        self.backbone = pretrained(AutoModel, self.path, self.attention, **load)
        key = (head_key or ("score" if self.head == "classifier" else "v_head.summary")).rstrip(".")
        hidden = self.backbone.config.hidden_size
        layer, quantiles = load_head(torch, self.path, model, hidden, self.head, key, self.positive)
        if self.calibrated and self.head == "classifier":
            layer, quantiles = to_quantiles(torch, layer, self.positive), True
        elif self.calibrated:
            raise PrmhError("calibrated adapters fit classifier and lm heads only.")
        self.quantile_levels = QUANTILE_LEVELS if quantiles else None
        last = list(self.backbone.parameters())[-1].device  # where the hidden states end
        self.model = head_model(self.backbone, layer.to(last, self.dtype), key)

    def _adapt(self, adapter: str | None) -> None:
        """Apply a PEFT adapter (its LoRA layers are injected in place, so ``backbone`` stays
        the adapted backbone) and move the model to its device."""
        if adapter:
            from peft import PeftConfig

            config = PeftConfig.from_pretrained(adapter)
            config.task_type = None  # only the LoRA layers matter: no LM wrapper around a head
            self.model = with_adapter(self.model, adapter, config)
        if not self.device_map:
            self.model.to(self.device)
        self.model.eval()

    def use_label_tokens(self, good_bad: tuple[int, int]) -> None:
        """An lm head with a calibrated adapter: its (good, bad) rows become a 3-quantile head
        (the calibration release's conversion), then the adapter applies."""
        if self.head != "lm" or not self.calibrated:
            return
        import torch

        from prmh.plugins.prms.heads import logistic_rows

        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        quantile = logistic_rows(torch, base.get_output_embeddings(), [good_bad[0]], good_bad[1])
        base.set_output_embeddings(quantile)
        self.quantile_levels = QUANTILE_LEVELS
        self._adapt(self.calibrated)

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
        with torch.inference_mode():
            if caching:
                hits.update(self._shared(torch, prepared, todo, head, pad))
                todo = [i for i in todo if i not in hits]
            lengths = [len(prepared[i][0].ids) for i in todo]
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
            tails = [len(prepared[i][0].ids) - hits[i][1] for i in hit]
            cached = [hits[i][1] for i in hit]
            for chosen in length_batches(tails, self.max_tokens_per_batch, cached):
                batch = [hit[j] for j in chosen]
                for i, result in zip(batch, self._extend(torch, prepared, hits, batch, pad, head),
                                     strict=True):  # fmt: skip
                    results[i] = result
        return [r for r in results if r is not None]

    def _head_rows(self, good_bad: tuple[int, int] | None) -> tuple[Any, Any]:
        """The LM head's (good, bad) rows and bias, for the ``lm`` head; else (None, None)."""
        if self.head != "lm" or self.quantile_levels:
            return None, None
        assert good_bad is not None
        out = self.model.get_output_embeddings()
        bias = out.bias[list(good_bad)] if getattr(out, "bias", None) is not None else None
        return out.weight[list(good_bad)], bias

    def _reads(self, torch: Any, hidden: Any, positions: Sequence[int], head: tuple) -> list:
        where = torch.tensor(positions, dtype=torch.long, device=hidden.device)
        return self._read(hidden[where], *head).float().cpu().tolist()

    def _shared(self, torch, prepared, todo, head, pad) -> dict[int, tuple[Entry, int]]:
        """Solutions that share a long token prefix (one problem's candidates share its
        prompt): each group's prefix is read once, and its solutions continue from it as from
        a cached one (``_extend``)."""
        rows = [i for i in todo if not prepared[i][1]]
        groups = shared_groups([prepared[i][0].ids for i in rows], SHARED_LEAST)
        prefixes = [
            Encoded(prepared[rows[g[0]]][0].ids[:n],
                    sorted({p for k in g for p in prepared[rows[k]][0].positions if p < n}))
            for g, n in groups
        ]  # fmt: skip
        shared = {}
        for chosen in length_batches([len(e.ids) for e in prefixes], self.max_tokens_per_batch):
            ids, mask, _, _ = pack(torch, [prefixes[j] for j in chosen], pad, self.device)
            out = self.backbone(input_ids=ids, attention_mask=mask, use_cache=True)
            layers = layers_of(cache_of(out))
            for row, j in enumerate(chosen):
                e, hidden = prefixes[j], out.last_hidden_state[row]
                values = self._reads(torch, hidden, e.positions, head) if e.positions else []
                state = (
                    row_of(layers, row, len(e.ids)),
                    dict(zip(e.positions, values, strict=True)),
                )
                entry = Entry(tuple(e.ids), tuple(e.positions), state)
                shared.update((rows[k], (entry, len(e.ids))) for k in groups[j][0])
        return shared

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

        rows, bias = self._head_rows(good_bad)

        def read(hidden: Any, positions: list[int]) -> list[float]:
            if not positions:
                return []
            where = torch.tensor(positions, dtype=torch.long, device=hidden.device)
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

        if self.head == "lm" and not self.quantile_levels:
            logits = h @ rows.T + (bias if bias is not None else 0)
            return torch.softmax(logits.float(), dim=-1)[:, 0]
        layer = self.model.get_output_embeddings() if self.head == "lm" else self.model.head
        out = layer(h).float()
        if self.quantile_levels:
            return torch.sigmoid(out)
        if self.head == "classifier":
            return torch.softmax(out, dim=-1)[:, self.positive].sum(-1)
        return torch.sigmoid(out).squeeze(-1)

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
