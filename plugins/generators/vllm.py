"""The `vllm` generator: vLLM offline inference (optional extra, needs a GPU).

The code that touches vLLM is kept to constructing ``vllm.LLM`` (prefix caching on) and calling
``generate``; what prmh asks for (``build_requests``) and how it reads the answers
(``parse_output``) are plain functions tested without vLLM installed. Each sample is a request
with ``n=1`` and its own seed, so a sample does not change when the pool grows; prefix caching
makes the shared prompt cheap.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Annotated, Any

from prmh import Generation, SampleRequest
from prmh.errors import PrmhError
from prmh.options import Above, AtLeast, AtMost
from prmh.plugins.generators.common import (
    Sampling,
    flatten,
    sample_seed,
    server_generation,
    stops_of,
    temperature_of,
)


def build_requests(
    requests: Sequence[SampleRequest], sampling: Sampling, render: Callable[[SampleRequest], str]
) -> list[tuple[str, dict[str, Any]]]:
    """(prompt, SamplingParams keyword arguments) for every sample, in ``flatten`` order."""
    out = []
    for r, index in flatten(requests):
        request = requests[r]
        params = {
            "n": 1,
            "temperature": temperature_of(request, sampling),
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_new_tokens,
            "seed": sample_seed(request, index) % 2**63,
            "stop": [*request.stop, *sampling.stop],
            "logprobs": request.top_logprobs,  # 0: the sampled token's log-probability only
        }
        out.append((render(request) + request.prefix, params))
    return out


def parse_output(
    output: Any, request: SampleRequest, sampling: Sampling, seconds: float
) -> Generation:
    """A Generation from a vLLM ``RequestOutput`` (its first completion)."""
    completion = output.outputs[0]
    tokens: list[str] | None = []
    logprobs: list[float] | None = []
    tops: list[list[tuple[str, float]]] = []
    for token_id, entry in zip(completion.token_ids, completion.logprobs or [], strict=False):
        chosen = entry[token_id]
        logprobs.append(chosen.logprob)
        tokens.append(chosen.decoded_token if chosen.decoded_token is not None else "")
        tops.append([(e.decoded_token or "", e.logprob) for e in entry.values()])
    if not completion.logprobs:
        tokens = logprobs = None
    return server_generation(
        text=completion.text,
        tokens=tokens,
        logprobs=logprobs,
        num_tokens=len(completion.token_ids),
        finish_reason=completion.finish_reason,
        stop_reason=completion.stop_reason,
        request_stops=request.stop,
        end_stops=sampling.stop,
        seconds=seconds,
        top_logprobs=tops if request.top_logprobs else None,
    )


class VLLMGenerator:
    """Samples with a vLLM engine in this process."""

    def __init__(
        self,
        model: str,
        revision: str | None = None,
        dtype: str = "auto",
        tensor_parallel_size: Annotated[int, AtLeast(1)] = 1,
        gpu_memory_utilization: Annotated[float, Above(0), AtMost(1)] = 0.9,
        max_model_len: Annotated[int, AtLeast(1)] | None = None,
        temperature: float = 0.7,
        top_p: float = 1.0,
        max_new_tokens: int = 1024,
        stop: str | list[str] | None = None,
        chat_template: bool = False,
        system_prompt: str | None = None,
    ):
        self.sampling = Sampling(temperature, top_p, max_new_tokens, stops_of(stop))
        try:
            import vllm
        except ImportError as e:
            raise PrmhError(
                "the vllm generator needs vLLM and a GPU: pip install 'prmh[vllm]'. On a CPU "
                "use the hf generator, or the openai generator against a vLLM server."
            ) from e
        self.vllm = vllm
        self.llm = vllm.LLM(
            model=model,
            revision=revision,
            dtype=dtype,
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len,
            enable_prefix_caching=True,
        )
        self.chat_template, self.system_prompt = chat_template, system_prompt

    def render(self, request: SampleRequest) -> str:
        if not self.chat_template:
            return request.prompt
        messages = [{"role": "user", "content": request.prompt}]
        if self.system_prompt is not None:
            messages.insert(0, {"role": "system", "content": self.system_prompt})
        return self.llm.get_tokenizer().apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )

    def sample(self, requests: Sequence[SampleRequest]) -> list[list[Generation]]:
        built = build_requests(requests, self.sampling, self.render)
        started = time.perf_counter()
        outputs = self.llm.generate(
            [prompt for prompt, _ in built],
            [self.vllm.SamplingParams(**params) for _, params in built],
            use_tqdm=False,
        )
        seconds = (time.perf_counter() - started) / max(1, len(outputs))
        parsed = {
            row: parse_output(output, requests[row[0]], self.sampling, seconds)
            for row, output in zip(flatten(requests), outputs, strict=True)
        }
        return [
            [parsed[(r, request.first_index + i)] for i in range(request.n)]
            for r, request in enumerate(requests)
        ]
