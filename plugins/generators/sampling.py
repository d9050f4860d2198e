"""Sampling one token per row of a batch, as ``torch.multinomial`` would from each row's own
generator: the hf generator's sampler."""

from __future__ import annotations

from typing import Any

PARALLEL_DRAWS = 8192  # vocabulary entries from which rows are drawn on several threads


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
        """Each sampled row's Exp(1) draws, from its own generator. On the CPU at a large
        vocabulary the rows are drawn on torch's threads at once (20 ns an entry: 185 ms a
        step for 64 rows of 152k entries alone, 95 ms on two threads); each row still draws
        from its own generator alone, so the numbers are the same."""
        rows = [
            (noise[r], g) for r, (g, c) in enumerate(zip(generators, cold, strict=True)) if not c
        ]
        threads = self.torch.get_num_threads()
        if noise.device.type != "cpu" or noise.shape[-1] < PARALLEL_DRAWS or threads < 2:
            for row, generator in rows:
                row.exponential_(1, generator=generator)
            return
        if self.pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self.pool = ThreadPoolExecutor(threads, thread_name_prefix="prmh-draws")
        inference = noise.is_inference()  # a thread's mode is its own: the caller's, there too

        def draw_row(item: tuple[Any, Any]) -> None:
            with self.torch.inference_mode(inference):
                item[0].exponential_(1, generator=item[1])

        list(self.pool.map(draw_row, rows))
