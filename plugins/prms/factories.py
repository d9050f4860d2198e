"""Factories of the transformers PRMs: a recipe plus a scorer, with each recipe's defaults.

Every factory also takes the options all PRMs share (``COMMON``): revision, dtype (``auto`` is
bf16 on GPU, fp32 on CPU), device, a PEFT ``adapter`` to apply, ``max_tokens_per_batch`` (padded
tokens per forward pass; ``auto``: 32,768 on a GPU, 8,192 elsewhere), ``max_length`` (longer
solutions are truncated from the left) and ``prefix_cache_tokens`` (recently scored solutions
kept with their KV caches, so that a step-level search's next round reads only the new step; 0
turns it off), ``calibrated`` (a PEFT adapter trained on the head converted to three quantiles,
as the calibration release's and ``prmh calibrate``'s are), ``server`` (vLLM pooling servers
that run the model: ``served_model``, ``server_concurrency``, ``server_probabilities``) and
``vllm`` (vLLM offline on this machine, ``gpu_memory_utilization``), both in
``prmh.plugins.prms.remote``; ``device_map`` (``auto``: one model spread over every GPU by
accelerate, for 72B PRMs).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Annotated, Any

from prmh import ScoreRequest, StepScores
from prmh.errors import PrmhError
from prmh.options import Above, AtLeast, AtMost

QWEN_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."

COMMON = {
    "revision": None,
    "dtype": "auto",
    "device": "auto",
    "adapter": None,
    "max_tokens_per_batch": "auto",
    "max_length": None,
    "prefix_cache_tokens": 65536,
    "calibrated": None,
    "server": None,
    "served_model": None,
    "server_concurrency": 8,
    "server_probabilities": True,
    "vllm": False,
    "gpu_memory_utilization": 0.4,
    "device_map": None,
    "attention": "auto",
}
COMMON_HINTS = {
    **dict.fromkeys(("revision", "adapter", "calibrated", "served_model"), str | None),
    "device_map": str | None,
    "server": str | list[str] | None,
    "max_tokens_per_batch": int | str,  # a number of tokens, or auto
    "max_length": Annotated[int, AtLeast(1)] | None,  # None: the model's
    "prefix_cache_tokens": Annotated[int, AtLeast(0)],
    "server_concurrency": Annotated[int, AtLeast(1)],
    "gpu_memory_utilization": Annotated[float, Above(0), AtMost(1)],  # vLLM's share of the GPU
}
SERVER = (
    "server",
    "served_model",
    "server_concurrency",
    "server_probabilities",
    "vllm",
    "gpu_memory_utilization",
)


class RecipePRM:
    """A PRM: a recipe that encodes solutions and a scorer that reads them in one pass."""

    def __init__(self, scorer: Any, recipe: Any):
        self.scorer, self.recipe = scorer, recipe
        good_bad = getattr(recipe, "good_bad", None)
        if good_bad is not None and hasattr(scorer, "use_label_tokens"):
            scorer.use_label_tokens(good_bad)
        if hasattr(scorer, "use_recipe"):
            scorer.use_recipe(recipe)

    @property
    def identity_extra(self) -> dict[str, Any]:
        """The weights' fingerprint, so retrained weights are never read from the cache, and
        the precision a dtype of ``auto`` chose where it is not fp32."""
        return {"weights": self.scorer.fingerprint, **getattr(self.scorer, "precision", {})}

    @property
    def reuses_prefixes(self) -> bool:
        return getattr(self.scorer, "prefixes", None) is not None

    def score(self, requests: Sequence[ScoreRequest]) -> list[StepScores]:
        from prmh.plugins.prms.scoring import score_requests

        return score_requests(self.scorer, self.recipe, requests)


def with_common_options(factory: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``COMMON`` to a factory's keyword options; it receives them as ``common``."""
    own = [p for p in inspect.signature(factory).parameters.values() if p.name != "common"]
    extra = [
        inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=v,
                          annotation=COMMON_HINTS.get(k, inspect.Parameter.empty))
        for k, v in COMMON.items()
    ]  # fmt: skip

    @functools.wraps(factory)
    def wrapper(**options: Any) -> Any:
        common = {k: options.pop(k, v) for k, v in COMMON.items()}
        return factory(**options, common=common)

    wrapper.__signature__ = inspect.Signature(own + extra)  # type: ignore[attr-defined]
    return wrapper


def _scorer(model: str | None, head: str, common: dict[str, Any], **extra: Any) -> Any:
    if not model:
        raise PrmhError("this PRM needs a checkpoint: -P model=PATH_OR_HUB_ID.")
    from prmh.plugins.hf_models import require_hf

    require_hf("transformers PRMs")
    if common["server"] or common["vllm"]:
        from prmh.plugins.prms.remote import RemoteScorer, VLLMScorer

        scorer = VLLMScorer if common["vllm"] else RemoteScorer
        return scorer(model, head, **common, **extra)
    from prmh.plugins.prms.hf import HFScorer

    return HFScorer(model, head, **{k: v for k, v in common.items() if k not in SERVER}, **extra)


def _token_ids(scorer: Any, good: str, bad: str, good_id: int | None, bad_id: int | None) -> tuple:
    vocab = len(scorer.tokenizer)
    ids = (
        good_id if good_id is not None else scorer.token_id(good, "good label"),
        bad_id if bad_id is not None else scorer.token_id(bad, "bad label"),
    )
    for i in ids:
        if not 0 <= i < vocab:
            raise PrmhError(f"label token id {i} is outside the vocabulary (size {vocab}).")
    return ids


@with_common_options
def qwen_math_prm(
    model: str = "Qwen/Qwen2.5-Math-PRM-7B",
    system_prompt: str = QWEN_SYSTEM,
    *,
    common: dict[str, Any],
) -> RecipePRM:
    from prmh.plugins.prms.recipes import TaggedRecipe

    scorer = _scorer(model, "classifier", common, positive_index=1)
    recipe = TaggedRecipe(
        scorer.tokenizer,
        template="chat",
        suffix="<extra_0>",
        joiner="",
        system_prompt=system_prompt,
    )
    return RecipePRM(scorer, recipe)


@with_common_options
def math_shepherd(
    model: str = "peiyi9979/math-shepherd-mistral-7b-prm",
    step_tag: str = "ки",
    good_token: str = "+",
    bad_token: str = "-",
    good_token_id: int | None = None,
    bad_token_id: int | None = None,
    joiner: str = "\n",
    *,
    common: dict[str, Any],
) -> RecipePRM:
    """The model card's layout: ``f"{question} {output}"``, each step followed by `` ки`` and
    joined by a newline (search-and-learn joins with a blank line: ``-P joiner='\\n\\n'``)."""
    from prmh.plugins.prms.recipes import TaggedRecipe

    scorer = _scorer(model, "lm", common)
    recipe = TaggedRecipe(
        scorer.tokenizer, template="{question} {solution}", suffix=f" {step_tag}", joiner=joiner
    )
    recipe.good_bad = _token_ids(scorer, good_token, bad_token, good_token_id, bad_token_id)
    return RecipePRM(scorer, recipe)


@with_common_options
def rlhflow(
    model: str = "RLHFlow/Llama3.1-8B-PRM-Deepseek-Data",
    good_token: str = "+",
    bad_token: str = "-",
    *,
    common: dict[str, Any],
) -> RecipePRM:
    from prmh.plugins.prms.recipes import ChatTurnsRecipe

    scorer = _scorer(model, "lm", common)
    return RecipePRM(
        scorer, ChatTurnsRecipe(scorer.tokenizer, good_token=good_token, bad_token=bad_token)
    )


@with_common_options
def skywork(
    model: str = "Skywork/Skywork-o1-Open-PRM-Qwen-2.5-7B",
    step_token: str = "\n",
    head_key: str = "v_head.summary",
    *,
    common: dict[str, Any],
) -> RecipePRM:
    from prmh.plugins.prms.recipes import SegmentRecipe

    scorer = _scorer(model, "value", common, head_key=head_key)
    return RecipePRM(scorer, SegmentRecipe(scorer.tokenizer, step_token=step_token))


@with_common_options
def value_head(
    model: str | None = None,
    separator: str = "[PRM]",
    query_template: str = "{question}",
    head_key: str = "v_head.summary",
    joiner: str = "\n",
    step_suffix: str | None = None,
    add_special_tokens: bool = False,
    *,
    common: dict[str, Any],
) -> RecipePRM:
    """A value head read at ``separator``, in the layout of ``value_head_recipe`` (no BOS
    unless ``add_special_tokens``, as PQM encodes)."""
    from prmh.plugins.prms.recipes import value_head_recipe

    scorer = _scorer(model, "value", common, head_key=head_key)
    recipe = value_head_recipe(
        scorer.tokenizer, separator, query_template, joiner, step_suffix, add_special_tokens
    )
    return RecipePRM(scorer, recipe)


@with_common_options
def asprm(
    model: str | None = None,
    step_tag: str = "ки",
    good_token_id: int | None = None,
    bad_token_id: int | None = None,
    *,
    common: dict[str, Any],
) -> RecipePRM:
    from prmh.plugins.prms.recipes import TaggedRecipe

    if good_token_id is None or bad_token_id is None:
        raise PrmhError(
            "asprm reads the positive and negative label tokens by id: give -P good_token_id=N "
            "-P bad_token_id=M (ASPRM-M: 1878, 839; ASPRM-L: 7820, 7740; ASPRM-D: 898, 701)."
        )
    scorer = _scorer(model, "lm", common)
    recipe = TaggedRecipe(
        scorer.tokenizer,
        template="{question}{solution}",
        suffix=f" {step_tag} ",
        joiner="\n",
        mark=step_tag,
    )
    recipe.good_bad = _token_ids(scorer, "", "", good_token_id, bad_token_id)
    return RecipePRM(scorer, recipe)


REASONEVAL_PROMPT = "Question:\n{question}\nAnswer:\nLet's think step by step.\n"


@with_common_options
def reasoneval(
    model: str = "GAIR/ReasonEval-7B",
    template: str = REASONEVAL_PROMPT,
    separator: str | None = None,
    head_key: str = "score_head",
    *,
    common: dict[str, Any],
) -> RecipePRM:
    """ReasonEval's validity: p_neutral + p_positive of the 3-class ``score_head`` ([negative,
    neutral, positive]) at the recorded separator positions."""
    from prmh.plugins.prms.recipes import SeparatorRecipe

    scorer = _scorer(model, "classifier", common, positive_index=(1, 2), head_key=head_key)
    recipe = SeparatorRecipe(scorer.tokenizer, template=template, separator=separator)
    return RecipePRM(scorer, recipe)


@with_common_options
def trl(
    model: str | None = None,
    step_separator: str = "\n",
    head_key: str = "score",
    *,
    common: dict[str, Any],
) -> RecipePRM:
    """A PRM trained by TRL's ``PRMTrainer`` (``AutoModelForTokenClassification``, 2 labels):
    softmax class 1 at the last token of each step's separator, as the trainer labels it."""
    from prmh.plugins.prms.recipes import PiecesRecipe

    scorer = _scorer(model, "classifier", common, head_key=head_key)
    return RecipePRM(scorer, PiecesRecipe(scorer.tokenizer, separator=step_separator))


@with_common_options
def generic(
    model: str | None = None,
    template: str = "{question}\n{solution}",
    step_suffix: str = " ки",
    mark: str | None = None,
    joiner: str = "\n",
    system_prompt: str | None = None,
    read: str = "lm",
    good_token: str = "+",
    bad_token: str = "-",
    good_token_id: int | None = None,
    bad_token_id: int | None = None,
    positive_index: int | Sequence[int] = 1,
    head_key: str | None = None,
    *,
    common: dict[str, Any],
) -> RecipePRM:
    """Any tagged recipe: ``template`` ('chat' or text with {question} and {solution}); each
    step followed by ``step_suffix`` and joined by ``joiner``; the score is read at ``mark``
    (default: the stripped suffix) with ``read`` = lm (softmax of good/bad token logits),
    classifier (softmax of a ``score`` head, summed over the class(es) ``positive_index``) or
    value (sigmoid of a value head)."""
    from prmh.plugins.prms.recipes import TaggedRecipe

    extra = {"positive_index": positive_index} if read == "classifier" else {}
    if head_key and read != "lm":
        extra["head_key"] = head_key
    scorer = _scorer(model, read, common, **extra)
    recipe = TaggedRecipe(
        scorer.tokenizer,
        template=template,
        suffix=step_suffix,
        joiner=joiner,
        mark=mark,
        system_prompt=system_prompt,
    )
    if read == "lm":
        recipe.good_bad = _token_ids(scorer, good_token, bad_token, good_token_id, bad_token_id)
    return RecipePRM(scorer, recipe)


@with_common_options
def implicit(
    model: str | None = None,
    reference: str | None = None,
    query_template: str = "{question}\n",
    joiner: str = "\n\n",
    scale: Sequence[float] = (1.0,),
    bias: Sequence[float] = (0.0,),
    *,
    common: dict[str, Any],
) -> RecipePRM:
    """An implicit PRM: sigmoid(scale * q + bias), q the summed log-likelihood ratio of the
    policy ``model`` to ``reference`` up to each step's end; three pairs give quantiles."""
    if not model or not reference:
        raise PrmhError(
            "the implicit PRM compares two language models: -P model=POLICY -P reference=REF."
        )
    from prmh.plugins.hf_models import require_hf

    require_hf("transformers PRMs")
    from prmh.plugins.prms.implicit import ImplicitRecipe, ImplicitScorer

    as_list = [scale] if isinstance(scale, int | float) else scale
    biases = [bias] if isinstance(bias, int | float) else bias
    if common["server"] or common["vllm"]:
        raise PrmhError("the implicit PRM compares two local models; it cannot be served.")
    local = {k: v for k, v in common.items() if k not in SERVER}
    scorer = ImplicitScorer(model, reference, as_list, biases, **local)
    return RecipePRM(scorer, ImplicitRecipe(scorer.tokenizer, query_template, joiner))
