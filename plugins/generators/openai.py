"""The `openai` generator: any OpenAI-compatible server (vLLM serve, SGLang, TGI), through its
completions endpoint (the prompt as text) or its chat completions endpoint (``endpoint=chat``:
the prompt as the user's message, the server applies the chat template; a partial solution is
continued as the assistant's message with vLLM's ``continue_final_message``).

Several servers can share the work (``base_url`` takes a list): each request goes to the server
with the fewest requests in flight, round-robin among ties. A failed request (connection error,
timeout, HTTP 408, 409, 429 or 5xx) is retried on the next server after an exponential backoff
with full jitter (a random wait up to ``backoff`` * 2^attempt), or after the server's
``Retry-After`` when it asks for longer; any other HTTP error is a mistake in the request and
stops the run with the server's message. At most ``concurrency`` requests are in flight. Every
sample is its own request with its own seed, so a sample does not change when the pool grows;
servers with prefix caching make the shared prompt cheap.
"""

from __future__ import annotations

import email.utils
import json
import os
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from prmh import Generation, SampleRequest
from prmh.errors import PrmhError
from prmh.plugins.generators.common import (
    Sampling,
    flatten,
    sample_seed,
    server_generation,
    stops_of,
    temperature_of,
)

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


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
    if logprobs:
        payload["logprobs"] = True if chat else 1
    return payload


def parse_completion(
    body: dict[str, Any], request: SampleRequest, sampling: Sampling, seconds: float
) -> Generation:
    """A Generation from a /completions or /chat/completions response body."""
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
    lp = choice.get("logprobs") or {}
    if chat:  # content: [{token, logprob, ...}]
        entries = lp.get("content") or []
        tokens = [e.get("token") for e in entries] if entries else None
        logprobs = [e.get("logprob") for e in entries] if entries else None
    else:
        tokens, logprobs = lp.get("tokens"), lp.get("token_logprobs")
    usage = body.get("usage") or {}
    count = usage.get("completion_tokens") or (len(tokens) if tokens else 0)
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
    )


class Balancer:
    """Least requests in flight, round-robin among ties; thread-safe."""

    def __init__(self, urls: Sequence[str]):
        self.urls = list(urls)
        self.in_flight = dict.fromkeys(self.urls, 0)
        self.sent = dict.fromkeys(self.urls, 0)
        self.lock = threading.Lock()
        self.turn = 0

    def acquire(self, avoid: str | None = None) -> str:
        with self.lock:
            candidates = [u for u in self.urls if u != avoid] or self.urls
            low = min(self.in_flight[u] for u in candidates)
            tied = [u for u in candidates if self.in_flight[u] == low]
            url = tied[self.turn % len(tied)]
            self.turn += 1
            self.in_flight[url] += 1
            self.sent[url] += 1
            return url

    def release(self, url: str) -> None:
        with self.lock:
            self.in_flight[url] -= 1


class OpenAIGenerator:
    """Samples from OpenAI-compatible completions servers."""

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
        urls = [
            u.strip().rstrip("/")
            for u in (base_url.split(",") if isinstance(base_url, str) else base_url)
        ]
        if not urls or not all(u.startswith(("http://", "https://")) for u in urls):
            raise PrmhError(f"base_url must be http(s) URLs, got {base_url!r}.")
        if concurrency < 1 or retries < 0 or backoff < 0 or timeout <= 0:
            raise PrmhError("need concurrency >= 1, retries >= 0, backoff >= 0 and timeout > 0.")
        if endpoint not in ("completions", "chat"):
            raise PrmhError(f"endpoint must be completions or chat, not {endpoint!r}.")
        self.model, self.chat, self.system_prompt = model, endpoint == "chat", system_prompt
        self.sampling = Sampling(temperature, top_p, max_new_tokens, stops_of(stop))
        self.balancer = Balancer(urls)
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.logprobs, self.concurrency = logprobs, concurrency
        self.retries, self.backoff, self.timeout = retries, backoff, timeout

    def sample(self, requests: Sequence[SampleRequest]) -> list[list[Generation]]:
        rows = flatten(requests)
        with ThreadPoolExecutor(self.concurrency) as pool:
            done = list(pool.map(lambda row: self._one(requests[row[0]], row[1]), rows))
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
        body = self._post(payload)
        return parse_completion(body, request, self.sampling, time.perf_counter() - started)

    def _post(self, payload: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last_error, failed, path = "", None, "chat/completions" if self.chat else "completions"
        for attempt in range(self.retries + 1):
            url, wait = self.balancer.acquire(avoid=failed), 0.0
            try:
                request = urllib.request.Request(f"{url}/{path}", data, headers)
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return json.loads(response.read())
            except urllib.error.HTTPError as e:
                detail = e.read()[:300].decode(errors="replace")
                if e.code not in RETRY_STATUS:
                    raise PrmhError(f"{url} refused the request (HTTP {e.code}): {detail}") from e
                last_error = f"HTTP {e.code} from {url}: {detail}"
                wait = retry_after(e.headers.get("Retry-After"))
            except (
                urllib.error.URLError,
                TimeoutError,
                ConnectionError,
                json.JSONDecodeError,
            ) as e:
                last_error = f"{type(e).__name__} from {url}: {e}"
            finally:
                self.balancer.release(url)
            failed = url
            if attempt < self.retries:  # full jitter; longer when the server asks for it
                jitter = random.uniform(0, self.backoff * 2**attempt)
                time.sleep(min(max(jitter, wait), self.timeout))
        raise PrmhError(
            f"no completion after {self.retries + 1} attempts; last error: {last_error}. "
            "Check that the servers in base_url are up."
        )


def retry_after(value: str | None) -> float:
    """Seconds a ``Retry-After`` header asks for (a number, or an HTTP date); 0 if none."""
    if not value:
        return 0.0
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 0.0
    return max(0.0, when.timestamp() - time.time())
