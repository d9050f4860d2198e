"""Transformers PRMs: every public step-scoring recipe, and the checkpoints known to use them.

Importing this module is cheap: each factory is registered as a lazy ``module:attr`` string and
torch is imported only when a PRM is built.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from prmh import hookimpl

FACTORIES = "prmh.plugins.prms.factories"

RECIPES = {
    "qwen-math-prm": "Qwen2.5-Math-PRM: chat template, <extra_0> after each step, 2-class head",
    "math-shepherd": "Math-Shepherd: ' ки' after each step, softmax over '+'/'-' logits there",
    "rlhflow": "RLHFlow: steps as user turns answered '+', P('+') at each reply",
    "skywork": "Skywork-o1-Open-PRM: value head, sigmoid at the newline after each step",
    "value-head": "Causal LM + linear value head read at a separator (PQM [PRM], UnPRM ş, prmh)",
    "asprm": "AdaptiveStep PRMs: ' ки ' tags, positive-label value at each tag (ids from config)",
    "reasoneval": "ReasonEval: pad-separated steps, p_neutral + p_positive of a 3-class head",
    "trl": "TRL PRMTrainer checkpoints: token-classification head at each step separator",
    "implicit": "Implicit PRM (PRIME): log-likelihood ratio of a policy to a reference LM",
    "generic": "Configurable recipe: template, step suffix and mark, and how to read the score",
}

# Checkpoints whose recipe prmh knows; `--prm ID` picks it (the options can still be changed).
CHECKPOINTS = {
    "Qwen/Qwen2.5-Math-PRM-7B": "qwen-math-prm",
    "Qwen/Qwen2.5-Math-PRM-72B": "qwen-math-prm",
    "Qwen/Qwen2.5-Math-7B-PRM800K": "qwen-math-prm",
    "peiyi9979/math-shepherd-mistral-7b-prm": "math-shepherd",
    "RLHFlow/Llama3.1-8B-PRM-Deepseek-Data": "rlhflow",
    "RLHFlow/Llama3.1-8B-PRM-Mistral-Data": "rlhflow",
    "Skywork/Skywork-o1-Open-PRM-Qwen-2.5-1.5B": "skywork",
    "Skywork/Skywork-o1-Open-PRM-Qwen-2.5-7B": "skywork",
    "GAIR/ReasonEval-7B": "reasoneval",
    "GAIR/ReasonEval-34B": "reasoneval",
}
# Token ids documented for a checkpoint (see the methods reference), used instead of looking
# the tokens up in its tokenizer.
CHECKPOINT_OPTIONS = {
    "peiyi9979/math-shepherd-mistral-7b-prm": {"good_token_id": 648, "bad_token_id": 387},
}
SPEED_ARGS = (
    "device",
    "attention",
    "max_tokens_per_batch",
    "prefix_cache_tokens",
    "server",
    "served_model",
    "server_concurrency",
    "vllm",
    "gpu_memory_utilization",
    "device_map",
)


class Preset:
    """A recipe factory with some options preset, imported only when it is used.

    Its signature is the recipe's with the preset defaults, so options are checked as usual.
    """

    def __init__(self, recipe: str, **preset: Any):
        self.recipe, self.preset = recipe, preset

    def _factory(self) -> Any:
        return getattr(importlib.import_module(FACTORIES), self.recipe.replace("-", "_"))

    def __call__(self, **options: Any) -> Any:
        return self._factory()(**{**self.preset, **options})

    @property
    def __signature__(self) -> inspect.Signature:
        signature = inspect.signature(self._factory())
        return signature.replace(
            parameters=[
                p.replace(default=self.preset[p.name]) if p.name in self.preset else p
                for p in signature.parameters.values()
            ]
        )


@hookimpl
def prmh_register_prm(register):
    for name, description in RECIPES.items():
        factory = f"{FACTORIES}:{name.replace('-', '_')}"
        register(name, factory, description=description, version="1", speed_args=SPEED_ARGS)
    for checkpoint, recipe in CHECKPOINTS.items():
        register(
            checkpoint,
            Preset(recipe, model=checkpoint, **CHECKPOINT_OPTIONS.get(checkpoint, {})),
            description=f"{checkpoint} with the {recipe} recipe",
            version="1",
            speed_args=SPEED_ARGS,
        )
