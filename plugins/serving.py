"""A fleet of HTTP servers shared by every server-backed component (the ``openai`` generator,
PRMs behind vLLM's pooling API): each request goes to the server with the fewest requests in
flight, round-robin among ties; a failed request (connection error, timeout, HTTP 408, 409,
429 or 5xx) is retried on the next server after an exponential backoff with full jitter (a
random wait up to ``backoff`` * 2^attempt), or after the server's ``Retry-After`` when it asks
for longer; any other HTTP error is a mistake in the request and stops the run with the
server's message. At most ``concurrency`` requests are in flight (``map``).
"""

from __future__ import annotations

import email.utils
import json
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from prmh.errors import PrmhError
from prmh.files import parse_json

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
# One JSON answer at most: a 32k-token completion with its log-probabilities is a few MB.
MAX_ANSWER_BYTES = 256 << 20


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


class Fleet:
    """POST JSON to a fleet of base URLs with balancing, retries and a concurrency limit."""

    def __init__(
        self,
        base_url: str | Sequence[str],
        *,
        api_key: str | None = None,
        concurrency: int = 8,
        retries: int = 5,
        backoff: float = 0.5,
        timeout: float = 600.0,
    ):
        urls = [
            u.strip().rstrip("/")
            for u in (base_url.split(",") if isinstance(base_url, str) else base_url)
        ]
        if not urls or not all(u.startswith(("http://", "https://")) for u in urls):
            raise PrmhError(f"base_url must be http(s) URLs, got {base_url!r}.")
        if concurrency < 1 or retries < 0 or backoff < 0 or timeout <= 0:
            raise PrmhError("need concurrency >= 1, retries >= 0, backoff >= 0 and timeout > 0.")
        self.balancer = Balancer(urls)
        self.api_key, self.concurrency = api_key, concurrency
        self.retries, self.backoff, self.timeout = retries, backoff, timeout

    def map(self, call: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        """``call`` on every item, at most ``concurrency`` at once, in order."""
        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(call, items))

    def post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """The JSON answer of one server to ``payload`` POSTed at ``path``."""
        data = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last_error, failed = "", None
        for attempt in range(self.retries + 1):
            url, wait = self.balancer.acquire(avoid=failed), 0.0
            try:
                request = urllib.request.Request(f"{url}/{path}", data, headers)
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return parse_json(self._read(response, url))
            except urllib.error.HTTPError as e:
                detail = e.read1(300).decode(errors="replace")  # not a whole hostile body
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
            f"no answer after {self.retries + 1} attempts; last error: {last_error}. "
            "Check that the servers in base_url are up."
        )

    def _read(self, response: Any, url: str) -> bytes:
        """An answer's body, read within ``timeout`` seconds in all (the socket's timeout bounds
        each read only: a server sending a byte now and then would hold a worker for ever) and
        refused past ``MAX_ANSWER_BYTES`` (memory stays bounded whatever a server sends)."""
        deadline, chunks, size = time.monotonic() + self.timeout, [], 0
        while chunk := response.read1(1 << 16):
            size += len(chunk)
            if size > MAX_ANSWER_BYTES:
                raise PrmhError(
                    f"{url} sent an answer of more than {MAX_ANSWER_BYTES >> 20} MB; "
                    "no completion or score is that large: check the server."
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"the answer took more than {self.timeout} s to arrive")
            chunks.append(chunk)
        return b"".join(chunks)


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
