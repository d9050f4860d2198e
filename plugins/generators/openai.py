"""The `openai` generator: any OpenAI-compatible server (vLLM serve, SGLang, TGI), through its
completions endpoint (the prompt as text) or its chat completions endpoint (``endpoint=chat``:
the prompt as the user's message, the server applies the chat template; a partial solution is
continued as the assistant's message with vLLM's ``continue_final_message``).

Several servers can share the work (``base_url`` takes a list), balanced, retried and limited
as ``prmh.plugins.serving.Fleet`` does. Every sample is its own request with its own seed, so a
sample does not change when the pool grows; servers with prefix caching make the shared prompt
cheap.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

from prmh import Generation, SampleRequest
from prmh.errors import PrmhError
from prmh.options import is_number
from prmh.plugins.generators.common import (
    Sampling,
    flatten,
    sample_seed,
    server_generation,
    stops_of,
    temperature_of,
)
from prmh.plugins.serving import Fleet


def build_payload(
    model: str,
    request: SampleRequest,
    index: int,
    sampling: Sampling,
    logprobs: bool,
    chat: bool = False,
    system_prompt: str | None = None,
) -> dict[str, Any]:
    """The /completions (or, with ``chat``, /chat/completions) body for sample ``index``."""
    payload: dict[str, Any] = {"model": model}
    if chat:
        messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
        messages.append({"role": "user", "content": request.prompt})
        if request.prefix:  # vLLM continues the assistant's message instead of a new turn
            messages.append({"role": "assistant", "content": request.prefix})
            payload |= {"continue_final_message": True, "add_generation_prompt": False}
        payload["messages"] = messages
    else:
        payload["prompt"] = request.prompt + request.prefix
    payload |= {
        "max_tokens": sampling.max_new_tokens,
        "temperature": temperature_of(request, sampling),
        "top_p": sampling.top_p,
        "n": 1,
        "seed": sample_seed(request, index) % 2**31,
    }
    stops = [*request.stop, *sampling.stop]
    if stops:
        payload["stop"] = stops
    if logprobs or request.top_logprobs:
        payload["logprobs"] = True if chat else max(1, request.top_logprobs)
        if chat and request.top_logprobs:
            payload["top_logprobs"] = request.top_logprobs
    return payload


def parse_completion(
    body: dict[str, Any], request: SampleRequest, sampling: Sampling, seconds: float
) -> Generation:
    """A Generation from a /completions or /chat/completions response body. A body of another
    shape (a server's bug, or a stranger's server) is one ``PrmhError`` quoting it, where a
    wrong kind of value in its logprobs or usage was a traceback."""
    try:
        choice = body["choices"][0]
        chat = "message" in choice
        text = choice["message"]["content"] if chat else choice["text"]
        if not isinstance(text, str):
            raise TypeError(text)
    except (KeyError, IndexError, TypeError) as e:
        raise PrmhError(
            f"the server's completion has no choices[0].text or .message.content: {body!r:.200}"
        ) from e
    try:
        return _generation(body, choice, chat, text, request, sampling, seconds)
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as e:
        raise PrmhError(
            f"the server's completion has logprobs or usage of another shape "
            f"({type(e).__name__}: {e}): {body!r:.200}"
        ) from e


def _generation(
    body: dict[str, Any],
    choice: dict[str, Any],
    chat: bool,
    text: str,
    request: SampleRequest,
    sampling: Sampling,
    seconds: float,
) -> Generation:
    lp = choice.get("logprobs") or {}
    tops: list | None = None
    if chat:  # content: [{token, logprob, top_logprobs: [{token, logprob}]}]
        entries = lp.get("content") or []
        tokens = [e.get("token") for e in entries] if entries else None
        logprobs = [e.get("logprob") for e in entries] if entries else None
        if request.top_logprobs and entries:
            tops = [[(a["token"], a["logprob"]) for a in e.get("top_logprobs") or []]
                    for e in entries]  # fmt: skip
    else:  # tokens, token_logprobs, top_logprobs: [{token: logprob}]
        tokens, logprobs = lp.get("tokens"), lp.get("token_logprobs")
        if request.top_logprobs and lp.get("top_logprobs"):
            tops = [list((d or {}).items()) for d in lp["top_logprobs"]]
    _check(tokens, logprobs, tops)
    usage = body.get("usage") or {}
    count = usage.get("completion_tokens") or (len(tokens) if tokens else 0)
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError(f"completion_tokens {count!r:.40}")
    return server_generation(
        text=text,
        tokens=tokens,
        logprobs=logprobs,
        num_tokens=count,
        finish_reason=choice.get("finish_reason"),
        stop_reason=choice.get("stop_reason"),
        request_stops=request.stop,
        end_stops=sampling.stop,
        seconds=seconds,
        top_logprobs=tops,
    )


def _check(tokens: Any, logprobs: Any, tops: Any) -> None:
    """Tokens are text and log-probabilities numbers (null where a server gives none)."""
    if tokens is not None and not _each(tokens, lambda t: isinstance(t, str)):
        raise TypeError("tokens that are not a list of text")
    if logprobs is not None and not _each(logprobs, _logprob):
        raise TypeError("log-probabilities that are not a list of numbers")
    if tops is not None and not all(
        isinstance(t, str) and _logprob(x) for alternatives in tops for t, x in alternatives
    ):
        raise TypeError("top log-probabilities that are not (text, number) pairs")


def _each(values: Any, test: Any) -> bool:
    return isinstance(values, list) and all(test(x) for x in values)


def _logprob(x: Any) -> bool:
    return x is None or is_number(x)


class OpenAIGenerator:
    """Samples from OpenAI-compatible servers (``prmh.plugins.serving.Fleet``)."""

    def __init__(
        self,
        model: str,
        base_url: str | list[str] = "http://127.0.0.1:8000/v1",
        api_key: str | None = None,
        temperature: float = 0.7,
        top_p: float = 1.0,
        max_new_tokens: int = 1024,
        stop: str | list[str] | None = None,
        logprobs: bool = True,
        concurrency: int = 8,
        retries: int = 5,
        backoff: float = 0.5,
        timeout: float = 600.0,
        endpoint: str = "completions",
        system_prompt: str | None = None,
    ):
        if endpoint not in ("completions", "chat"):
            raise PrmhError(f"endpoint must be completions or chat, not {endpoint!r}.")
        self.fleet = Fleet(
            base_url,
            api_key=api_key if api_key is not None else os.environ.get("OPENAI_API_KEY"),
            concurrency=concurrency,
            retries=retries,
            backoff=backoff,
            timeout=timeout,
        )
        self.model, self.chat, self.system_prompt = model, endpoint == "chat", system_prompt
        self.sampling = Sampling(temperature, top_p, max_new_tokens, stops_of(stop))
        self.logprobs = logprobs

    def sample(self, requests: Sequence[SampleRequest]) -> list[list[Generation]]:
        rows = flatten(requests)
        done = self.fleet.map(lambda row: self._one(requests[row[0]], row[1]), rows)
        results = dict(zip(rows, done, strict=True))
        return [
            [results[(r, request.first_index + i)] for i in range(request.n)]
            for r, request in enumerate(requests)
        ]

    def _one(self, request: SampleRequest, index: int) -> Generation:
        payload = build_payload(
            self.model, request, index, self.sampling, self.logprobs, self.chat, self.system_prompt
        )
        started = time.perf_counter()
        body = self.fleet.post("chat/completions" if self.chat else "completions", payload)
        return parse_completion(body, request, self.sampling, time.perf_counter() - started)
