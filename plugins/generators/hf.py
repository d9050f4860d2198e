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
from prmh.plugins.generators.detokenize import Detokenizer, token_pieces
from prmh.plugins.hf_models import cache_keyword, cache_of, forward_takes


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
        batch_size: int = 16,
    ):
        from prmh.plugins.hf_models import (
            device_and_dtype,
            quiet_transformers,
            require_hf,
            resolve_checkpoint,
        )

        require_hf("the hf generator")
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.sampling = Sampling(temperature, top_p, max_new_tokens, stops_of(stop))
        if batch_size < 1:
            raise PrmhError(f"batch_size must be at least 1, got {batch_size}.")
        quiet_transformers()
        self.path, self.fingerprint = resolve_checkpoint(model, revision)
        self.device, dtype_ = device_and_dtype(device, dtype)
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.model = AutoModelForCausalLM.from_pretrained(self.path, dtype=dtype_)
        if adapter:
            from peft import PeftModel

            self.model = PeftModel.from_pretrained(self.model, adapter)
        self.model.to(self.device).eval()
        if chat_template and not getattr(self.tokenizer, "chat_template", None):
            raise PrmhError(f"chat_template=true but {model!r} has no chat template.")
        self.chat_template, self.system_prompt = chat_template, system_prompt
        self.batch_size = batch_size
        eos = self.model.generation_config.eos_token_id
        self.eos = {*(eos if isinstance(eos, list) else [eos] if eos is not None else [])}
        if self.tokenizer.eos_token_id is not None:
            self.eos.add(self.tokenizer.eos_token_id)
        pad = self.tokenizer.pad_token_id
        self.pad = pad if pad is not None else next(iter(self.eos), 0)
        self.torch = torch
        self.cache_keyword = cache_keyword(self.model)
        last_only = forward_takes(self.model, "logits_to_keep")  # no LM head over the prompt
        self.last_logits = {"logits_to_keep": 1} if last_only else {}

    @property
    def identity_extra(self) -> dict[str, Any]:
        return {"weights": self.fingerprint}

    def context(self, request: SampleRequest) -> list[int]:
        """Token ids the model continues: the (templated) prompt, then the prefix."""
        if self.chat_template:
            messages = [{"role": "user", "content": request.prompt}]
            if self.system_prompt is not None:
                messages.insert(0, {"role": "system", "content": self.system_prompt})
            text = self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
            return self.tokenizer.encode(text + request.prefix, add_special_tokens=False)
        return self.tokenizer.encode(request.prompt + request.prefix)

    def sample(self, requests: Sequence[SampleRequest]) -> list[list[Generation]]:
        contexts = [self.context(r) for r in requests]
        rows = flatten(requests)
        rows.sort(key=lambda row: len(contexts[row[0]]))  # similar lengths share a batch
        out: dict[tuple[int, int], Generation] = {}
        for start in range(0, len(rows), self.batch_size):
            batch = rows[start : start + self.batch_size]
            generations = self._decode(
                [contexts[r] for r, _ in batch],
                [sample_seed(requests[r], i) for r, i in batch],
                [requests[r].stop for r, _ in batch],
                [temperature_of(requests[r], self.sampling) for r, _ in batch],
            )
            out.update(zip(batch, generations, strict=True))
        return [
            [out[(r, request.first_index + i)] for i in range(request.n)]
            for r, request in enumerate(requests)
        ]

    def _decode(
        self,
        contexts: list[list[int]],
        seeds: list[int],
        stops: list[tuple[str, ...]],
        temperatures: list[float],
    ) -> list[Generation]:
        """Sample every row to its end. Rows that ended leave the batch (and the KV cache)
        once a quarter of it has ended, so long samples do not carry short ones."""
        torch, rows = self.torch, len(contexts)
        started = time.perf_counter()
        width, longest = max(len(c) for c in contexts), self.sampling.max_new_tokens
        step_ids, mask, step_pos = self._left_padded(contexts, longest)
        generators = [torch.Generator().manual_seed(seed) for seed in seeds]
        texts = [Detokenizer(self.tokenizer) for _ in contexts]
        tokens: list[list[int]] = [[] for _ in contexts]
        logprobs: list[list[float]] = [[] for _ in contexts]
        ended: list[tuple[bool, str | None] | None] = [None] * rows
        live, past = list(range(rows)), None  # the original row of each row in the batch
        with torch.inference_mode():
            for step in range(longest):
                output = self.model(
                    input_ids=step_ids.to(self.device),
                    attention_mask=mask[:, : width + step].to(self.device),
                    position_ids=step_pos.to(self.device),
                    use_cache=True,
                    **{self.cache_keyword: past, **self.last_logits},
                )
                past = cache_of(output)
                at = [i for i, b in enumerate(live) if ended[b] is None]
                picked = self._pick(
                    output.logits[at, -1].float().cpu(),
                    [generators[live[i]] for i in at],
                    [temperatures[live[i]] for i in at],
                )
                chosen = [self.pad] * len(live)
                for i, token, logprob in zip(at, *picked, strict=True):
                    b, chosen[i] = live[i], token
                    tokens[b].append(token)
                    logprobs[b].append(logprob)
                    ended[b] = self._ended(token, texts[b], stops[b])
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
        return [
            self._generation(tokens[b], logprobs[b], ended[b], stops[b], seconds, texts[b])
            for b in range(rows)
        ]

    def _left_padded(self, contexts: list[list[int]], longest: int) -> tuple[Any, Any, Any]:
        """Input ids, the attention mask for the contexts and ``longest`` new tokens, and
        position ids, for a left-padded batch."""
        torch, width = self.torch, max(len(c) for c in contexts)
        ids = torch.full((len(contexts), width), self.pad, dtype=torch.long)
        mask = torch.zeros((len(contexts), width + longest), dtype=torch.long)
        for b, c in enumerate(contexts):
            ids[b, width - len(c) :] = torch.tensor(c)
            mask[b, width - len(c) :] = 1  # every new token is attended to
        return ids, mask, (mask[:, :width].cumsum(-1) - 1).clamp(min=0)

    def _pick(
        self, logits: Any, generators: list[Any], temperatures: list[float]
    ) -> tuple[list[int], list[float]]:
        """One token per row, all rows at once: what ``torch.multinomial`` draws from each
        row's own generator (argmax of p / q with q ~ Exp(1), the same numbers it computes),
        the argmax for greedy rows, and each token's log-probability."""
        torch = self.torch
        if not temperatures:
            return [], []
        t = torch.tensor(temperatures)
        greedy = t == 0
        logp = torch.log_softmax(logits / torch.where(greedy, 1.0, t)[:, None], -1)
        probs = logp.exp()
        if self.sampling.top_p < 1:
            ordered, order = probs.sort(-1, descending=True)
            keep = ordered.cumsum(-1) - ordered < self.sampling.top_p  # smallest set reaching p
            probs = torch.zeros_like(probs).scatter(-1, order, torch.where(keep, ordered, 0.0))
        noise = torch.ones_like(probs)
        for row, (generator, cold) in enumerate(zip(generators, greedy.tolist(), strict=True)):
            if not cold:
                noise[row].exponential_(1, generator=generator)
        chosen = torch.where(greedy, logits.argmax(-1), (probs / noise).argmax(-1))
        return chosen.tolist(), logp.gather(1, chosen[:, None])[:, 0].tolist()

    def _ended(
        self, token: int, text: Detokenizer, stops: tuple[str, ...]
    ) -> tuple[bool, str | None] | None:
        """(finished, request stop) when the row is done; None to go on."""
        if token in self.eos:
            return True, None
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
