"""Reliability on partial solutions: solutions cut at token thresholds, scored, aggregated (mean,
min, last, and whole: the cut text scored as one block), and correlated (Pearson, bootstrap
interval over problems) with correctness and with the full solution's score."""

from __future__ import annotations

import itertools
import re
from typing import Any

from prmh.analysis.measures import pearson_interval
from prmh.errors import PrmhError
from prmh.registry import Component

_WORD = re.compile(r"\s*(?:\w+|[^\w\s])")  # a word or a mark, the space before it kept

AGGREGATIONS = ("mean", "min", "last", "whole")


def parse_thresholds(text: str) -> list[int]:
    """Token counts, comma-separated: sorted, distinct, positive."""
    try:
        cuts = sorted({int(t) for t in text.split(",") if t.strip()})
    except ValueError:
        raise PrmhError(f"--thresholds must be whole numbers, got {text!r}.") from None
    if not cuts or cuts[0] < 1:
        raise PrmhError("--thresholds must be positive token counts.")
    return cuts


def truncate(text: str, threshold: int, tokenizer: Any) -> str:
    """The first ``threshold`` tokens of ``text`` (the PRM's tokenizer; words and punctuation
    marks for PRMs without one)."""
    if tokenizer is None:  # trailing white space holds no token: the pattern at each of its
        # positions was a quadratic scan (40,000 spaces: 23 s)
        words = itertools.islice(_WORD.finditer(text.rstrip()), threshold)
        return "".join(word.group() for word in words)
    ids = tokenizer.encode(text, add_special_tokens=False)
    return tokenizer.decode(ids[:threshold], skip_special_tokens=True)


def token_count(text: str, tokenizer: Any) -> int:
    """How many tokens ``truncate`` counts in ``text``: a threshold at or above it cuts
    nothing."""
    if tokenizer is None:
        return sum(1 for _ in _WORD.finditer(text.rstrip()))
    return len(tokenizer.encode(text, add_special_tokens=False))


def cut_steps(steps: tuple[str, ...], text: str, cut: str) -> tuple[str, ...]:
    """The steps of ``text`` that ``cut`` (its beginning) holds, the last one cut short: how a
    splitter that reads token confidences (which plain text lacks) splits a truncation."""
    length = next((i for i, (a, b) in enumerate(zip(text, cut, strict=False)) if a != b), None)
    length = min(len(cut), len(text)) if length is None else length
    out, at = [], 0
    for step in steps:
        start = text.find(step, at)
        start = at if start < 0 else start
        at = start + len(step)
        piece = text[start : min(at, length)].strip()
        if piece:
            out.append(step if at <= length else piece)
        if at >= length:
            break
    return tuple(out)


def partial_scores(
    prm: Any,
    splitter: Any,
    problem: Any,
    text: str,
    thresholds: list[int],
    one_pass: bool,
    whole: bool = True,
    steps_read: tuple[str, ...] | None = None,
) -> tuple[list[list[float]], list[float], int]:
    """Step scores of the full solution ``text`` and of its truncations (full first), the
    ``whole`` score of the full solution and of each truncation (full first), and the forward
    tokens spent. With ``one_pass`` and a causal transformers PRM, every truncation comes from
    the full solution's single pass (a solution longer than the PRM's ``max_length`` is
    rescored, since it would be truncated). A splitter that reads token confidences cannot
    split plain text: give the steps it read from the generation (``steps_read``); each
    truncation keeps those it holds."""
    from prmh import ScoreRequest
    from prmh.plugins.kv_cache import shared_prefix

    scorer = getattr(prm.instance, "scorer", None)
    tokenizer = getattr(scorer, "tokenizer", None)
    texts = [truncate(text, t, tokenizer) for t in thresholds]
    if steps_read is not None:
        steps = [steps_read] + [cut_steps(steps_read, text, t) for t in texts]
    else:
        steps = [tuple(splitter.split(text))] + [tuple(splitter.split(t)) for t in texts]
    recipe = getattr(prm.instance, "recipe", None)
    encoded = [recipe.encode(problem.question, list(s)) for s in steps] if scorer else []
    shares_cache = hasattr(scorer, "score_variants")  # the implicit PRM has no such pass
    if one_pass and shares_cache and len(encoded[0].ids) <= scorer.max_length:
        full, variants = scorer.score_variants(
            encoded[0], encoded[1:], getattr(recipe, "good_bad", None)
        )
        step_probs = [full, *variants]
        tokens = len(encoded[0].ids) + sum(
            len(e.ids) - shared_prefix(encoded[0].ids, e.ids) for e in encoded[1:]
        )
    else:
        scored = prm.instance.score([ScoreRequest(problem, s) for s in steps])
        step_probs = [list(x.probs) for x in scored]
        tokens = sum(x.num_tokens for x in scored)
    if not whole:
        return step_probs, [], tokens
    wholes = prm.instance.score(
        [ScoreRequest(problem, (t.strip(),) if t.strip() else ()) for t in [text, *texts]]
    )
    return step_probs, [w.probs[0] if w.probs else 0.0 for w in wholes], tokens


def _aggregators() -> dict[str, Any]:
    """The registered ``mean``, ``min`` and ``last`` aggregators, over a list of step scores."""
    from prmh.registry import load_registry
    from prmh.types import StepScores

    registry = load_registry()
    built = {a: registry.create("aggregator", a).instance for a in ("mean", "min", "last")}
    return {a: (lambda probs, f=f: f(StepScores(tuple(probs)))) for a, f in built.items()}


def correlation(
    prms: list[tuple[str, Component]],
    solutions: list[Any],
    splitter: Any,
    cuts: list[int],
    one_pass: bool = True,
    progress: Any = None,
) -> dict[str, Any]:
    """Per PRM label: ``correlations[aggregation][threshold or "full"]`` (Pearson r with an
    interval, with correctness and with the full score), forward tokens, solution count, how
    many solutions each threshold cut (``cut``) and the longest's tokens (``longest``).
    ``solutions``: graded solutions (``prmh.datasets.Graded``)."""
    aggregate = _aggregators()
    correct = [float(x.correct) for x in solutions]
    groups = [x.problem.id for x in solutions]
    results: dict[str, Any] = {}
    for label, prm in prms:
        scores = {a: {t: [] for t in cuts} for a in AGGREGATIONS}
        full = {a: [] for a in AGGREGATIONS}
        tokens = 0
        for done, x in enumerate(solutions, start=1):
            if progress is not None:
                progress(f"cut and score {label}", done, len(solutions))
            read = x.solution.steps if hasattr(splitter, "split_generation") else None
            step_probs, wholes, spent = partial_scores(
                prm, splitter, x.problem, x.generation.text, cuts, one_pass, steps_read=read
            )
            tokens += spent
            for a, f in aggregate.items():
                full[a].append(f(step_probs[0]))
                for t, probs in zip(cuts, step_probs[1:], strict=True):
                    scores[a][t].append(f(probs))
            full["whole"].append(wholes[0])
            for t, w in zip(cuts, wholes[1:], strict=True):
                scores["whole"][t].append(w)
        table = {
            a: {
                str(t): {
                    "correctness": pearson_interval(scores[a][t], correct, groups),
                    "full_score": pearson_interval(scores[a][t], full[a], groups),
                }
                for t in cuts
            }
            | {"full": {"correctness": pearson_interval(full[a], correct, groups)}}
            for a in AGGREGATIONS
        }
        tokenizer = getattr(getattr(prm.instance, "scorer", None), "tokenizer", None)
        lengths = [token_count(x.generation.text, tokenizer) for x in solutions]
        results[label] = {
            "correlations": table,
            "forward_tokens": tokens,
            "solutions": len(solutions),
            "cut": {str(t): sum(n > t for n in lengths) for t in cuts},
            "longest": max(lengths, default=0),
            "method": "one-pass" if one_pass else "rescore",
        }
    return results
