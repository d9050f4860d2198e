"""Sampling one token per row of a batch, as ``torch.multinomial`` would from each row's own
generator: the hf generator's sampler."""

from __future__ import annotations

import math
from typing import Any

PARALLEL_DRAWS = 8192  # vocabulary entries from which rows are drawn on several threads
CHUNK = 1 << 20  # entries drawn and turned into Exp(1) numbers at a time (8 MB of float64)


class RowSampler:
    """Rows' tokens at once under each row's temperature and the generator's ``top_p``."""

    def __init__(self, torch: Any, top_p: float):
        self.torch, self.top_p = torch, top_p
        self.pool: Any = None  # threads drawing rows' samples at once (``draw``)

    def pick(
        self, logits: Any, generators: list[Any], temperatures: list[float], top: int = 0
    ) -> tuple[list[int], list[float], list[list[tuple[int, float]]]]:
        """One token per row, all rows at once: what ``torch.multinomial`` draws from each
        row's own generator (argmax of p / q with q ~ Exp(1), the same numbers it computes),
        the argmax for greedy rows, each token's log-probability, and the ``top`` likeliest
        (token, log-probability) pairs of each row."""
        torch = self.torch
        if not temperatures:
            return [], [], []
        t = torch.tensor(temperatures, device=logits.device)
        greedy = t == 0
        logp = torch.log_softmax(logits / torch.where(greedy, 1.0, t)[:, None], -1)
        probs = logp.exp()
        if self.top_p < 1:
            ordered, order = probs.sort(-1, descending=True)
            keep = ordered.cumsum(-1) - ordered < self.top_p  # smallest set reaching p
            probs = torch.zeros_like(probs).scatter(-1, order, torch.where(keep, ordered, 0.0))
        noise = torch.ones_like(probs)
        self.draw(noise, generators, [x == 0 for x in temperatures])  # no device round trip
        chosen = torch.where(greedy, logits.argmax(-1), (probs / noise).argmax(-1))
        best: list[list[tuple[int, float]]] = [[] for _ in temperatures]
        if top:
            values, ids = logp.topk(min(top, logp.shape[-1]), -1)
            best = [
                list(zip(i, v, strict=True))
                for i, v in zip(ids.tolist(), values.tolist(), strict=True)
            ]
        return chosen.tolist(), logp.gather(1, chosen[:, None])[:, 0].tolist(), best

    def draw(self, noise: Any, generators: list[Any], cold: list[bool]) -> None:
        """Each sampled row's Exp(1) draws, from its own generator. On the CPU each row draws
        the float64 uniforms ``exponential_`` would draw and a few rows' at a time (about a
        million entries) become their numbers at once (``exponential_from``: 121 against 197
        ms for 64 rows of 152k entries); at a large vocabulary the rows draw on torch's threads
        at once. Each row still draws from its own generator alone: the numbers are the same."""
        torch = self.torch
        drawn = [(r, g) for r, (g, c) in enumerate(zip(generators, cold, strict=True)) if not c]
        if noise.device.type != "cpu":
            for r, generator in drawn:
                noise[r].exponential_(1, generator=generator)
            return
        threads = torch.get_num_threads()
        parallel = noise.shape[-1] >= PARALLEL_DRAWS and threads > 1
        step = max(1, CHUNK // noise.shape[-1])
        for start in range(0, len(drawn), step):
            part = drawn[start : start + step]
            uniform = torch.empty((len(part), noise.shape[-1]), dtype=torch.float64)
            rows = [(uniform[i], g) for i, (_, g) in enumerate(part)]
            if parallel:
                self._threaded(rows, threads, uniform.is_inference())
            else:
                for row, generator in rows:
                    row.uniform_(generator=generator)
            noise[[r for r, _ in part]] = exponential_from(torch, uniform)

    def _threaded(self, rows: list[tuple[Any, Any]], threads: int, inference: bool) -> None:
        if self.pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self.pool = ThreadPoolExecutor(threads, thread_name_prefix="prmh-draws")

        def draw_row(item: tuple[Any, Any]) -> None:
            with self.torch.inference_mode(inference):  # a thread's mode is its own
                item[0].uniform_(generator=item[1])

        list(self.pool.map(draw_row, rows))


def exponential_from(torch: Any, uniform: Any) -> Any:
    """float32 Exp(1) draws from float64 uniforms (which it overwrites), as torch's CPU
    ``exponential_`` computes each: ``-log1p(-u)`` with the C library's ``log1p``, rounded to
    float32. Vectorised; the vectorised ``log1p`` may differ from the C library's in the last
    bits, which changes the float32 only next to a rounding midpoint (the 29 bits a float32
    drops within 4 of half): there, none in 18 million draws, it is ``math.log1p``'s."""
    x = uniform.neg_()
    exact = torch.log1p(x).neg_()
    out = exact.float()
    dropped = exact.view(torch.int64).bitwise_and_((1 << 29) - 1).sub_(1 << 28).abs_()
    for at in (dropped <= 4).nonzero().tolist():
        out[tuple(at)] = -math.log1p(float(x[tuple(at)]))
    return out
