"""The openai generator's chat completions endpoint, jittered backoff and Retry-After, against a
local stand-in server (loopback only). Request and response shapes as the OpenAI API reference
gives them (``/v1/chat/completions``: ``messages``; ``choices[0].message.content``;
``choices[0].logprobs.content[].token/logprob``) and vLLM's chat extensions
(``continue_final_message``, ``add_generation_prompt``)."""

from __future__ import annotations

import email.utils
import json
import time

import pytest
from standin import JSONHandler, serving

from prmh import Problem, SampleRequest
from prmh.errors import PrmhError
from prmh.plugins.generators.common import Sampling
from prmh.plugins.generators.openai import OpenAIGenerator, build_payload, parse_completion
from prmh.plugins.serving import retry_after

REQUEST = SampleRequest(Problem("p", "2 + 3?", "5"), "Q: 2 + 3?\nA:", 1, 0)


class ChatStandIn(JSONHandler):
    """/v1/chat/completions: replies from the last message and the seed; the first
    ``busy`` requests get HTTP 429 with ``Retry-After``."""

    def do_POST(self):
        body = self.body()
        server = self.server
        with server.lock:
            server.seen.append((self.path, body, time.monotonic()))
            busy = server.busy > 0
            server.busy -= busy
        if busy:
            return self.reply(429, {"error": "slow down"}, {"Retry-After": server.retry_after})
        last = body["messages"][-1]["content"]
        text = f" {len(last)} and {body['seed'] % 7}. The answer is 5."
        pieces = [p for p in text.replace(" ", "\x00 ").split("\x00") if p]
        choice = {
            "message": {"role": "assistant", "content": text},
            "finish_reason": "stop",
            "logprobs": {"content": [{"token": p, "logprob": -0.25} for p in pieces]},
        }
        self.reply(200, {"choices": [choice], "usage": {"completion_tokens": len(pieces)}})


@pytest.fixture
def chat_server():
    with serving(ChatStandIn, seen=[], busy=0, retry_after="1") as served:
        yield served


def test_chat_payload_continues_the_assistants_message():
    sampling = Sampling(max_new_tokens=16)
    plain = build_payload("m", REQUEST, 0, sampling, True, chat=True, system_prompt="Be brief.")
    assert plain["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Q: 2 + 3?\nA:"},
    ]
    assert "prompt" not in plain and plain["logprobs"] is True
    assert "continue_final_message" not in plain
    step = SampleRequest(REQUEST.problem, REQUEST.prompt, 1, 0, prefix="First, 2", stop=("\n",))
    going_on = build_payload("m", step, 0, sampling, False, chat=True)
    assert going_on["messages"][-1] == {"role": "assistant", "content": "First, 2"}
    assert going_on["continue_final_message"] and not going_on["add_generation_prompt"]
    body = {
        "choices": [
            {
                "message": {"content": "Step 1\n"},
                "finish_reason": "stop",
                "logprobs": {"content": [{"token": "Step", "logprob": -1.0},
                                         {"token": " 1\n", "logprob": -0.5}]},
            }
        ]
    }  # fmt: skip
    out = parse_completion(body, step, sampling, 0.0)
    assert out.text == "Step 1" and out.stop == "\n" and not out.finished
    full = parse_completion(body, REQUEST, sampling, 0.0)
    assert full.tokens == ("Step", " 1\n") and full.token_logprobs == (-1.0, -0.5)
    with pytest.raises(PrmhError, match=r"message\.content"):
        parse_completion({"choices": [{"message": {}}]}, REQUEST, sampling, 0.0)


def test_chat_samples_wait_as_long_as_retry_after_asks(chat_server):
    server, url = chat_server
    server.busy = 1
    generator = OpenAIGenerator("m", base_url=url, endpoint="chat", backoff=0.0, retries=2)
    started = time.monotonic()
    (row,) = generator.sample([SampleRequest(REQUEST.problem, REQUEST.prompt, 2, 0)])
    assert time.monotonic() - started >= 0.9  # Retry-After: 1, though backoff is 0
    assert all(g.finished and g.text.endswith("The answer is 5.") for g in row)
    assert all("".join(g.tokens) == g.text for g in row)
    assert {path for path, _, _ in server.seen} == {"/v1/chat/completions"}


def test_backoff_is_jittered_and_bounded(monkeypatch):
    import prmh.plugins.serving as module

    waits = []
    monkeypatch.setattr(module.time, "sleep", waits.append)
    generator = OpenAIGenerator("m", base_url="http://127.0.0.1:9/v1", retries=6, backoff=0.5)
    with pytest.raises(PrmhError, match="no answer after 7 attempts"):
        generator.sample([REQUEST])
    assert len(waits) == 6
    assert all(0 <= w <= 0.5 * 2**k for k, w in enumerate(waits))
    assert len(set(waits)) == len(waits)  # random, not the same schedule every time


def test_retry_after_reads_seconds_and_dates():
    assert retry_after("2") == 2.0 and retry_after(None) == 0.0 and retry_after("soon") == 0.0
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < retry_after(later) <= 30
    assert retry_after(email.utils.formatdate(time.time() - 30, usegmt=True)) == 0.0


class Hostile(JSONHandler):
    """A server whose answer is ``size`` bytes of JSON, sent a byte every ``drip`` seconds
    (0: at once)."""

    def do_POST(self):
        self.body()
        data = b'{"x": "' + b"a" * (self.server.size - 10) + b'"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        for i in range(0, len(data), 1 if self.server.drip else len(data)):
            self.wfile.write(data[i : i + (1 if self.server.drip else len(data))])
            self.wfile.flush()
            time.sleep(self.server.drip)


def test_a_servers_answer_is_bounded_in_size_and_time(monkeypatch):
    """Whatever a server sends, a worker reads at most MAX_ANSWER_BYTES and waits at most about
    ``timeout`` seconds for the whole answer (urllib's timeout bounds each socket read: a byte
    every 0.2 s held a worker for ever, and a huge answer was read whole into memory)."""
    import prmh.plugins.serving as module

    monkeypatch.setattr(module, "MAX_ANSWER_BYTES", 4096)
    with serving(Hostile, size=10_000, drip=0.0) as (_, url):
        with pytest.raises(PrmhError, match="sent an answer of more than"):
            module.Fleet(url, retries=0).post("completions", {})
    with serving(Hostile, size=1_000, drip=0.0) as (_, url):
        assert module.Fleet(url, retries=0).post("completions", {})["x"] == "a" * 990
    with serving(Hostile, size=1_000, drip=0.2) as (_, url):
        started = time.monotonic()
        with pytest.raises(PrmhError, match=r"TimeoutError.*more than 1\.0 s"):
            module.Fleet(url, retries=0, timeout=1.0).post("completions", {})
        assert time.monotonic() - started < 3


def test_an_unknown_endpoint_is_refused():
    with pytest.raises(PrmhError, match="endpoint must be completions or chat"):
        OpenAIGenerator("m", endpoint="responses")


def test_chat_end_to_end_from_the_cli(cli, chat_server):
    _, url = chat_server
    result = cli("eval", "--world", "sim", "--generator", "openai", "-G", "model=m", "-G",
                 f"base_url={json.dumps(url)}", "-G", "endpoint=chat", "--prm", "oracle",
                 "--limit", "3", "-n", "2", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    (table,) = json.loads(result.output)["metrics"]["tables"]
    assert table["generator"].startswith("openai") and table["problems"] == 3
    cells = [c for row in table["rows"] if "prm" in row for c in row["cells"]]
    assert cells and all(c["compute"]["generated_tokens"] > 0 for c in cells)
