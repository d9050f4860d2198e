"""A step-level beam search written from docs/plugins.md alone: keep the best `keep` partial
solutions each round and give each `budget // keep` continuations of one more step."""

from prmh import Compute, Generation, SearchResult, hookimpl


class SimpleBeam:
    def __init__(self, keep=2, max_steps=30, separator="\n\n"):
        self.keep, self.max_steps, self.separator = keep, max_steps, separator

    def run(self, ctx, problems, budget, seed):
        beams = {p.id: [""] for p in problems}  # partial solution texts
        done = {p.id: [] for p in problems}
        spent = {p.id: Compute() for p in problems}
        for _ in range(self.max_steps):
            items, parents = [], []
            for p in problems:
                live = beams[p.id] if len(done[p.id]) < budget else []
                width = max(1, budget // max(1, len(live)))
                for i, text in enumerate(live):
                    prefix = text + self.separator if text else ""
                    items.append((p, prefix, width, i * width))
                    parents.append((p, prefix))
            if not items:
                break
            children = ctx.extend(items, seed, (self.separator,))
            born = []
            for (p, prefix), generations in zip(parents, children, strict=True):
                for g in generations:
                    spent[p.id] += Compute(generated_tokens=g.num_tokens, wall_seconds=g.seconds)
                    if g.text.strip() or g.finished:
                        whole = Generation(prefix + g.text, g.finished, g.num_tokens, stop=g.stop)
                        born.append((p, ctx.read(whole)))
            candidates, costs = ctx.rank(born)
            survivors = {p.id: [] for p in problems}
            for (p, solution), candidate, cost in zip(born, candidates, costs, strict=True):
                spent[p.id] += cost
                if solution.finished:
                    done[p.id].append(candidate)
                elif not solution.generation.finished:
                    survivors[p.id].append(candidate)
            for p in problems:
                best = sorted(survivors[p.id], key=lambda c: c.score, reverse=True)
                beams[p.id] = [c.solution.text for c in best[: self.keep]]
        return [SearchResult(p.id, tuple(done[p.id][:budget]), spent[p.id]) for p in problems]


@hookimpl
def prmh_register_search(register):
    register("simple-beam", SimpleBeam, description="Beam search written from the docs")
