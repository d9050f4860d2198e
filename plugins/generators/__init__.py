"""Model-backed generators: transformers (`hf`), vLLM offline (`vllm`, optional extra) and any
OpenAI-compatible completions server (`openai`). Factories are lazy: importing this is cheap."""

from __future__ import annotations

from prmh import hookimpl


@hookimpl
def prmh_register_generator(register):
    register(
        "hf",
        "prmh.plugins.generators.hf:HFGenerator",
        description="transformers sampling on CPU or GPU, with token log-probabilities",
        version="1",
        speed_args=("device", "batch_size", "prefix_cache_tokens", "attention"),
    )
    register(
        "vllm",
        "prmh.plugins.generators.vllm:VLLMGenerator",
        description="vLLM offline inference with prefix caching (extra: prmh[vllm], GPU)",
        version="1",
        speed_args=("tensor_parallel_size", "gpu_memory_utilization"),
    )
    register(
        "openai",
        "prmh.plugins.generators.openai:OpenAIGenerator",
        description="OpenAI-compatible completions servers, load-balanced, with retries",
        version="1",
        speed_args=("base_url", "api_key", "concurrency", "retries", "backoff", "timeout"),
    )
