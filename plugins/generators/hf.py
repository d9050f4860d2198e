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

import os
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


def token_pieces(decode_prefix: Any, count: int) -> list[str]:
    """The text each token adds, such that the pieces join to the decoded text.

    ``decode_prefix(k)`` decodes the first k tokens. A byte-level token can end inside a
    character (decoded as U+FFFD until the next token completes it); text that a later token
    rewrites is taken back from the pieces before it.
    """
    pieces: list[str] = []
    previous = ""
    for k in range(1, count + 1):
        text = decode_prefix(k)
        common = len(os.path.commonprefix([previous, text]))  # noqa: RUF071 (characters)
        excess = len(previous) - common
        for j in range(len(pieces) - 1, -1, -1):
            if excess <= 0:
                break
            take = min(excess, len(pieces[j]))
            pieces[j] = pieces[j][: len(pieces[j]) - take]
            excess -= take
        pieces.append(text[common:])
        previous = text
    return pieces


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
        torch, s = self.torch, self.sampling
        started = time.perf_counter()
        width = max(len(c) for c in contexts)
        ids = torch.full((len(contexts), width), self.pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for b, c in enumerate(contexts):
            ids[b, width - len(c) :] = torch.tensor(c)
            mask[b, width - len(c) :] = 1
        generators = [torch.Generator().manual_seed(seed) for seed in seeds]
        tokens: list[list[int]] = [[] for _ in contexts]
        logprobs: list[list[float]] = [[] for _ in contexts]
        texts = [""] * len(contexts)
        ended: list[tuple[bool, str | None] | None] = [None] * len(contexts)
        position = (mask.cumsum(-1) - 1).clamp(min=0)
        past = None
        step_ids, step_mask, step_pos = ids, mask, position
        with torch.inference_mode():
            for _ in range(s.max_new_tokens):
                output = self.model(
                    input_ids=step_ids.to(self.device),
                    attention_mask=step_mask.to(self.device),
                    position_ids=step_pos.to(self.device),
                    past_key_values=past,
                    use_cache=True,
                )
                past = output.past_key_values
                logits = output.logits[:, -1].float().cpu()
                chosen = []
                for b in range(len(contexts)):
                    if ended[b] is not None:
                        chosen.append(self.pad)
                        continue
                    token, logprob = self._pick(logits[b], generators[b], temperatures[b])
                    chosen.append(token)
                    tokens[b].append(token)
                    logprobs[b].append(logprob)
                    ended[b] = self._ended(b, token, tokens, texts, stops)
                if all(e is not None for e in ended):
                    break
                step_ids = torch.tensor(chosen)[:, None]
                step_mask = torch.cat(
                    [step_mask, torch.ones((len(contexts), 1), dtype=torch.long)], 1
                )
                step_pos = step_pos[:, -1:] + 1
        seconds = (time.perf_counter() - started) / len(contexts)
        return [
            self._generation(tokens[b], logprobs[b], ended[b], stops[b], seconds)
            for b in range(len(contexts))
        ]

    def _pick(self, logits: Any, generator: Any, temperature: float) -> tuple[int, float]:
        torch, s = self.torch, self.sampling
        if temperature == 0:
            token = int(logits.argmax())
            return token, float(torch.log_softmax(logits, -1)[token])
        logp = torch.log_softmax(logits / temperature, -1)
        probs = logp.exp()
        if s.top_p < 1:
            ordered, order = probs.sort(descending=True)
            keep = ordered.cumsum(0) - ordered < s.top_p  # the smallest set reaching top_p
            probs = torch.zeros_like(probs).scatter(0, order[keep], ordered[keep])
        token = int(torch.multinomial(probs, 1, generator=generator))
        return token, float(logp[token])

    def _ended(
        self,
        b: int,
        token: int,
        tokens: list[list[int]],
        texts: list[str],
        stops: list[tuple[str, ...]],
    ) -> tuple[bool, str | None] | None:
        """(finished, request stop) when row b is done; None to go on."""
        if token in self.eos:
            return True, None
        if not stops[b] and not self.sampling.stop:  # nothing to look for: no decoding
            return None
        previous = texts[b]
        texts[b] = self.tokenizer.decode(tokens[b], skip_special_tokens=True)
        search_from = max(
            0, len(previous) - max((len(x) for x in (*stops[b], *self.sampling.stop)), default=0)
        )
        hit = first_stop(texts[b], (*stops[b], *self.sampling.stop), search_from)
        if hit is not None:
            return hit[1] in self.sampling.stop, hit[1] if hit[1] in stops[b] else None
        return None

    def _generation(
        self,
        ids: list[int],
        logprobs: list[float],
        ended: tuple[bool, str | None] | None,
        stops: tuple[str, ...],
        seconds: float,
    ) -> Generation:
        finished, stop = ended if ended is not None else (False, None)
        content = [t for t in ids if t not in self.eos]
        pieces = token_pieces(
            lambda k: self.tokenizer.decode(content[:k], skip_special_tokens=True), len(content)
        )
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
