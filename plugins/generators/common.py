"""What every model-backed generator shares: per-sample seeds, stop strings, sampling options.

Each sample gets its own seed, a hash of (seed, problem, prompt, prefix, sample index), so a
sample does not depend on how many others are drawn with it or in which batch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from prmh import Generation, SampleRequest
from prmh.errors import PrmhError


def sample_seed(request: SampleRequest, index: int) -> int:
    """A 63-bit seed for sample ``index`` of ``request``."""
    key = repr((request.seed, request.problem.id, request.prompt, request.prefix, index))
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") >> 1


def first_stop(text: str, stops: Sequence[str], start: int = 0) -> tuple[int, str] | None:
    """The earliest stop string in ``text[start:]``: (position, string), or None."""
    found = None
    for stop in stops:
        at = text.find(stop, start) if stop else -1
        if at >= 0 and (found is None or at < found[0]):
            found = (at, stop)
    return found


@dataclass(frozen=True)
class Sampling:
    """Options every generator takes; checked once."""

    temperature: float = 0.7
    top_p: float = 1.0
    max_new_tokens: int = 1024
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise PrmhError(f"temperature must be >= 0, got {self.temperature}.")
        if not 0 < self.top_p <= 1:
            raise PrmhError(f"top_p must be in (0, 1], got {self.top_p}.")
        if self.max_new_tokens < 1:
            raise PrmhError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}.")


def temperature_of(request: SampleRequest, sampling: Sampling) -> float:
    """The request's temperature override, else the generator's."""
    return sampling.temperature if request.temperature is None else request.temperature


def flatten(requests: Sequence[SampleRequest]) -> list[tuple[int, int]]:
    """(request number, sample index) for every sample asked for."""
    return [
        (r, request.first_index + i) for r, request in enumerate(requests) for i in range(request.n)
    ]


def stops_of(value: str | Sequence[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def server_generation(
    *,
    text: str,
    tokens: Sequence[str] | None,
    logprobs: Sequence[float] | None,
    num_tokens: int,
    finish_reason: str | None,
    stop_reason: object,
    request_stops: Sequence[str],
    end_stops: Sequence[str],
    seconds: float,
    top_logprobs: Sequence[Sequence[tuple[str, float]]] | None = None,
) -> Generation:
    """A Generation from a server's (vLLM, OpenAI-compatible) completion.

    ``finish_reason`` "stop" with no stop string (``stop_reason`` None or a token id) is the end
    of sequence: finished. A request stop string (a step boundary) leaves it unfinished and is
    recorded; an end-marker stop string finishes it. "length" is unfinished. A server that
    returns the stop string in the text (``include_stop_str_in_output``) has it removed here.
    ``top_logprobs`` (each token's alternatives) are kept when the tokens make up the text.
    """
    stop: str | None = None
    finished = finish_reason == "stop"
    if isinstance(stop_reason, str):
        stop = stop_reason if stop_reason in request_stops else None
        finished = stop_reason in end_stops
    elif finished and stop_reason is None:
        for candidate in request_stops:
            if candidate and text.endswith(candidate):
                stop, finished = candidate, False
    if stop is not None and text.endswith(stop):
        text = text[: len(text) - len(stop)]
    aligned = tokens is not None and "".join(tokens) == text
    return Generation(
        text=text,
        finished=finished,
        num_tokens=num_tokens,
        token_logprobs=tuple(logprobs) if logprobs is not None else None,
        tokens=tuple(tokens) if aligned else None,
        stop=stop,
        seconds=seconds,
        top_logprobs=ranked(top_logprobs) if aligned and top_logprobs else None,
    )


def ranked(
    tops: Sequence[Sequence[tuple[str, float]]],
) -> tuple[tuple[tuple[str, float], ...], ...]:
    """Each token's alternatives, likeliest first (a server's order is not promised)."""
    return tuple(
        tuple(sorted(((str(t), float(p)) for t, p in a), key=lambda x: -x[1])) for a in tops
    )
