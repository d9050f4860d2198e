"""The `hf` generator: sampling with transformers on CPU or GPU.

prmh runs its own decoding loop (a KV cache over a left-padded batch) rather than
``model.generate``, for three things generate does not give together: a separate random
generator per sample (so sample i is the same whatever else shares its batch), the
log-probability of every sampled token, and stop strings checked on the decoded text, which is
what step-level search needs (stop at the end of the next step).

A token's log-probability is taken under the distribution it was sampled from after
temperature and before top-p (greedy decoding: the plain softmax).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Sequence
from typing import Any

from prmh import Generation, SampleRequest
from prmh.errors import PrmhError
from prmh.plugins.generators.common import (
    Sampling,
    first_stop,
    flatten,
    sample_seed,
    stops_of,
    temperature_of,
)
from prmh.plugins.generators.detokenize import Decoding, Detokenizer, Rows, token_pieces
from prmh.plugins.generators.sampling import RowSampler
from prmh.plugins.hf_models import (
    attends_everywhere,
    cache_keyword,
    cache_of,
    forward_takes,
    halved_on_oom,
)
from prmh.plugins.kv_cache import KeptPrefixes, growing_cache, layers_of, left_padded


class HFGenerator:
    """Batched sampling from a local or cached transformers causal LM."""

    def __init__(
        self,
        model: str,
        revision: str | None = None,
        dtype: str = "auto",
        device: str = "auto",
        adapter: str | None = None,
        temperature: float = 0.7,
        top_p: float = 1.0,
        max_new_tokens: int = 1024,
        stop: str | list[str] | None = None,
        chat_template: bool = False,
        system_prompt: str | None = None,
        batch_size: int | str = "auto",
        prefix_cache_tokens: int = 65536,
        attention: str = "auto",
    ):
        from prmh.plugins.hf_models import (
            auto_precision,
            batch_rows,
            device_and_dtype,
            loadable_checkpoint,
            pretrained,
            quiet_transformers,
            require_hf,
            with_adapter,
        )

        require_hf("the hf generator")
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.sampling = Sampling(temperature, top_p, max_new_tokens, stops_of(stop))
        self.sampler = RowSampler(torch, top_p)
        quiet_transformers()
        self.path, self.fingerprint = loadable_checkpoint(model, revision, "-G model=PATH")
        self.device, dtype_ = device_and_dtype(device, dtype)
        self.precision = auto_precision(device, dtype)
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.model = pretrained(AutoModelForCausalLM, self.path, attention, dtype=dtype_)
        self.room = _room(max_new_tokens, self.model.config, model)
        if adapter:
            self.model = with_adapter(self.model, adapter)
        self.model.to(self.device).eval()
        if chat_template and not getattr(self.tokenizer, "chat_template", None):
            raise PrmhError(f"chat_template=true but {model!r} has no chat template.")
        self.chat_template, self.system_prompt = chat_template, system_prompt
        self.batch_size = batch_rows(batch_size, self.device)
        self.kept = KeptPrefixes(prefix_cache_tokens) if prefix_cache_tokens > 0 else None
        eos = self.model.generation_config.eos_token_id
        self.eos = {*(eos if isinstance(eos, list) else [eos] if eos is not None else [])}
        if self.tokenizer.eos_token_id is not None:
            self.eos.add(self.tokenizer.eos_token_id)
        pad = self.tokenizer.pad_token_id
        self.pad = pad if pad is not None else next(iter(self.eos), 0)
        self.torch, self.decoding = torch, Decoding(self.tokenizer)
        self.cache_keyword = cache_keyword(self.model)
        last_only = forward_takes(self.model, "logits_to_keep")  # no LM head over the prompt
        self.last_logits = {"logits_to_keep": 1} if last_only else {}

    @property
    def identity_extra(self) -> dict[str, Any]:
        return {"weights": self.fingerprint, **self.precision}

    def contexts(self, requests: Sequence[SampleRequest]) -> list[list[int]]:
        """Token ids each request's model continues: the (templated) prompt, then the prefix;
        encoded in one tokenizer call, as each would be alone (a search's round asks for many)."""
        if not requests:
            return []
        texts = [self._templated(r.prompt) + r.prefix for r in requests]
        encoded = self.tokenizer(texts, add_special_tokens=not self.chat_template)
        return [list(ids) for ids in encoded["input_ids"]]

    def _templated(self, prompt: str) -> str:
        if not self.chat_template:
            return prompt
        messages = [{"role": "user", "content": prompt}]
        if self.system_prompt is not None:
            messages.insert(0, {"role": "system", "content": self.system_prompt})
        return self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )

    def sample(self, requests: Sequence[SampleRequest]) -> list[list[Generation]]:
        """Each request's samples; where the GPU runs out of memory, in batches of half the
        rows (each row's draws are its own, so the samples are the same)."""
        return halved_on_oom(self, "batch_size", functools.partial(self._sample, requests), 1)

    def _sample(self, requests: Sequence[SampleRequest]) -> list[list[Generation]]:
        contexts = self.contexts(requests)
        cached = [
            self.kept.find(r, c) if self.kept else None
            for r, c in zip(requests, contexts, strict=True)
        ]
        rows = flatten(requests)
        rows.sort(key=lambda row: len(contexts[row[0]]))  # similar lengths share a batch
        out: dict[tuple[int, int], Generation] = {}
        for start in range(0, len(rows), self.batch_size):
            batch = rows[start : start + self.batch_size]
            generations, kv = self._decode(
                [contexts[r] for r, _ in batch],
                [sample_seed(requests[r], i) for r, i in batch],
                [cached[r] for r, _ in batch],
                [requests[r] for r, _ in batch],
            )
            out.update(zip(batch, generations, strict=True))
            for (r, _), g, row_kv in zip(batch, generations, kv, strict=True):
                if row_kv is not None:  # stopped at a step's end: the next round continues it
                    self.kept.add(requests[r], g, row_kv)
        return [
            [out[(r, request.first_index + i)] for i in range(request.n)]
            for r, request in enumerate(requests)
        ]

    def _decode(
        self,
        contexts: list[list[int]],
        seeds: list[int],
        cached: list[tuple[list, int] | None],
        asks: list[SampleRequest],
    ) -> tuple[list[Generation], list[tuple[list[int], list] | None]]:
        """Sample every row to its end; also, for each row that stopped at a request stop,
        its token ids and KV (for the next round). Rows that ended leave the batch (and the
        KV cache) once a quarter of it has ended, so long samples do not carry short ones.
        A row whose request asks for ``top_logprobs`` keeps each token's alternatives, and one
        with ``pause_below`` ends after its first token less likely than that."""
        torch, rows = self.torch, len(contexts)
        started = time.perf_counter()
        temperatures = [temperature_of(a, self.sampling) for a in asks]
        layout = _Layout(torch, contexts, cached, self.sampling.max_new_tokens, self.pad, self.room)
        step_ids, mask, step_pos = layout.ids, layout.mask, layout.positions
        # on a GPU each row's generator lives there: on the CPU, 128 rows of a 152k vocabulary
        # take 0.4 s a step to sample, the time of dozens of GPU decoding steps (other
        # accelerators sample on the CPU, as every device did before)
        where = self.device if self.device.type == "cuda" else torch.device("cpu")
        generators = [torch.Generator(where).manual_seed(seed) for seed in seeds]
        done = Rows(self.tokenizer, rows, self.decoding)
        ended, kept, top = done.ended, done.kept, max(a.top_logprobs for a in asks)
        live, past = list(range(rows)), layout.past  # the original row of each batch row
        with torch.inference_mode():
            for step in range(self.sampling.max_new_tokens):
                if step == 0:
                    past, logits = self._first_pass(layout)
                else:
                    width = layout.width + step
                    past, logits = self._forward(step_ids, mask[:, :width], step_pos, past)
                at = [i for i, b in enumerate(live) if ended[b] is None]
                picked = self.sampler.pick(  # every row still going: no copy of the logits
                    (logits if len(at) == len(live) else logits[at]).float().to(where),
                    [generators[live[i]] for i in at],
                    [temperatures[live[i]] for i in at],
                    top,
                )
                chosen = [self.pad] * len(live)
                for i, token, logprob, best in zip(at, *picked, strict=True):
                    b, chosen[i] = live[i], token
                    done.add(b, token, logprob, best[: asks[b].top_logprobs])
                    ended[b] = self._ended(token, done.texts[b], asks[b].stop, logprob, asks[b])
                    if self.kept is not None and ended[b] is not None and ended[b][1] is not None:
                        kv = layout.row_kv(past, i, b, step)
                        kept[b] = (contexts[b] + done.tokens[b][:-1], kv)
                running = [i for i, b in enumerate(live) if ended[b] is None]
                if not running:
                    break
                step_ids, step_pos = torch.tensor(chosen)[:, None], step_pos[:, -1:] + 1
                if len(running) <= 3 * len(live) // 4:
                    keep = torch.tensor(running)
                    past.reorder_cache(keep.to(self.device))
                    step_ids, mask, step_pos = step_ids[keep], mask[keep], step_pos[keep]
                    live = [live[i] for i in running]
        seconds = (time.perf_counter() - started) / rows
        return [self._row(done, b, asks[b], seconds) for b in range(rows)], kept

    def _forward(self, ids: Any, mask: Any, positions: Any, past: Any) -> tuple[Any, Any]:
        """One forward pass: the grown KV cache and each row's last logits."""
        output = self.model(
            input_ids=ids.to(self.device),
            attention_mask=mask.to(self.device),
            position_ids=positions.to(self.device),
            use_cache=True,
            **{self.cache_keyword: past, **self.last_logits},
        )
        return cache_of(output), output.logits[:, -1]

    def _first_pass(self, layout: _Layout) -> tuple[Any, Any]:
        """The batch's contexts read once each: rows that continue the same context (the
        samples of one prompt, the continuations of one beam) share its pass, whose KV cache
        and logits are then copied to each of them."""
        ids, mask, positions = layout.ids, layout.mask[:, : layout.width], layout.positions
        first, expand = layout.first, layout.expand
        if expand is None:
            return self._forward(ids, mask, positions, layout.past)
        past, logits = self._forward(ids[first], mask[first], positions[first], layout.past)
        past.reorder_cache(expand.to(self.device))
        return past, logits[expand.to(logits.device)]

    def _row(self, done: Rows, b: int, ask: SampleRequest, seconds: float) -> Generation:
        g = self._generation(
            done.tokens[b], done.logprobs[b], done.ended[b], ask.stop, seconds, done.texts[b]
        )
        return self._with_alternatives(g, done.alternatives[b] if ask.top_logprobs else None)

    def _with_alternatives(
        self, g: Generation, alternatives: list[list[tuple[int, float]]] | None
    ) -> Generation:
        if alternatives is None or g.tokens is None:
            return g
        decode = functools.partial(self.tokenizer.decode, skip_special_tokens=True)
        tops = tuple(
            tuple((decode([i]), lp) for i, lp in row) for row in alternatives[: len(g.tokens)]
        )
        return dataclasses.replace(g, top_logprobs=tops)

    def _ended(
        self,
        token: int,
        text: Detokenizer,
        stops: tuple[str, ...],
        logprob: float = 0.0,
        ask: SampleRequest | None = None,
    ) -> tuple[bool, str | None] | None:
        """(finished, request stop) when the row is done; None to go on. A row pauses,
        unfinished, after a token less likely than its request's ``pause_below`` (TVD)."""
        if token in self.eos:
            return True, None
        if ask is not None and ask.pause_below and logprob < math.log(ask.pause_below):
            return False, None
        every = (*stops, *self.sampling.stop)
        if not every:  # nothing to look for: the text is decoded once, at the end
            return None
        hit = text.tail_stop(every, text.push(token))
        if hit is not None:
            return hit in self.sampling.stop, hit if hit in stops else None
        return None

    def _generation(
        self,
        ids: list[int],
        logprobs: list[float],
        ended: tuple[bool, str | None] | None,
        stops: tuple[str, ...],
        seconds: float,
        text_so_far: Detokenizer,
    ) -> Generation:
        finished, stop = ended if ended is not None else (False, None)
        content = [t for t in ids if t not in self.eos]
        pieces = token_pieces(self.tokenizer, content, text_so_far)
        text = "".join(pieces)
        hit = first_stop(text, (*stops, *self.sampling.stop))
        if hit is not None:  # the text ends before the stop string
            text = text[: hit[0]]
            kept, length = [], 0
            for piece in pieces:
                if length >= len(text):
                    break
                kept.append(piece[: len(text) - length])
                length += len(piece)
            pieces = kept
        aligned = "".join(pieces) == text
        return Generation(
            text=text,
            finished=finished,
            num_tokens=len(ids),
            token_logprobs=tuple(logprobs[: len(pieces)]) if aligned else tuple(logprobs),
            tokens=tuple(pieces) if aligned else None,
            stop=stop,
            seconds=seconds,
        )


def _room(max_new_tokens: int, config: Any, model: str) -> int:
    """The KV positions a batch keeps free to grow into (none for a model that does not attend
    to every position); no more new tokens than the model has positions, as a batch's
    attention mask is laid out for them all (max_new_tokens=10**9 asked for 64 GB)."""
    positions = getattr(config, "max_position_embeddings", None)
    if isinstance(positions, int) and max_new_tokens > positions:
        raise PrmhError(
            f"max_new_tokens={max_new_tokens} is more than {model!r} has positions for "
            f"({positions}): use at most {positions}."
        )
    return max_new_tokens if attends_everywhere(config) else 0


class _Layout:
    """A batch's first forward pass: each row's cached prefix (n tokens of KV, left-padded to
    the longest) then the rest of its context (left-padded to the longest rest), so every row's
    last token is in the last column; without cached prefixes this is plain left padding. The
    attention mask covers the new tokens too; positions count from each row's start."""

    def __init__(self, torch: Any, contexts, cached, longest: int, pad: int, room: int):
        self.torch = torch
        self.cut = [c[1] if c is not None else 0 for c in cached]
        tails = [ctx[n:] for ctx, n in zip(contexts, self.cut, strict=True)]
        self.tails = [len(t) for t in tails]
        prefix, rest = max(self.cut), max(self.tails)
        self.prefix, self.width = prefix, prefix + rest
        self.ids = torch.full((len(contexts), rest), pad, dtype=torch.long)
        self.mask = torch.zeros((len(contexts), self.width + longest), dtype=torch.long)
        self.positions = torch.zeros((len(contexts), rest), dtype=torch.long)
        for b, (tail, n) in enumerate(zip(tails, self.cut, strict=True)):
            self.ids[b, rest - len(tail) :] = torch.tensor(tail)
            self.mask[b, prefix - n : prefix] = 1
            self.mask[b, self.width - len(tail) :] = 1  # and every new token
            self.positions[b, rest - len(tail) :] = torch.arange(n, n + len(tail))
        rows = [(c[0] if c is not None else None, n) for c, n in zip(cached, self.cut, strict=True)]
        # rows with the same context after the same cached KV are read once (first[expand[b]])
        same = [(tuple(ctx), id(kv), n) for ctx, (kv, n) in zip(contexts, rows, strict=True)]
        first: dict[tuple, int] = {}
        for b, key in enumerate(same):
            first.setdefault(key, b)
        group = {key: g for g, key in enumerate(first)}
        self.first = torch.tensor(list(first.values()))
        self.expand = torch.tensor([group[key] for key in same]) if len(group) < len(same) else None
        kept = [rows[b] for b in first.values()]
        self.past = (
            left_padded(torch, kept, room) if prefix else growing_cache(room) if room else None
        )

    def row_kv(self, past: Any, i: int, b: int, step: int) -> list:
        """Row b's KV (batch row i) over its context and the tokens fed so far, copied."""
        spans = [(self.prefix - self.cut[b], self.prefix),
                 (self.width - self.tails[b], self.width + step)]  # fmt: skip
        return [
            tuple(self.torch.cat([t[i : i + 1, :, a:z] for a, z in spans], 2) for t in kv)
            for kv in layers_of(past)
        ]
