"""PRM training on transformers + peft + torch: a causal LM backbone with a linear value head
read at a separator after each step (the ``value-head`` recipe's layout), or its LM head's
'+'/'-' logits at a ' ки' tag (the ``math-shepherd`` layout).

Solutions are encoded by the same recipe that scores them, so training and evaluation cannot
disagree on format. The separator is added to the tokenizer when it is not one token. LoRA (on
the attention's q and v projections, a new separator's embedding trained in full) or full
fine-tuning; the head is always trained in full. bf16 autocast on GPU. The saved directory (LoRA
merged) holds the backbone, ``value_head.safetensors``, the tokenizer and a ``prmh_prm.json``, so
``--prm DIR`` evaluates it.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from prmh.errors import PrmhError
from prmh.labels import LabelledSolution
from prmh.plugins.training.config import TrainConfig
from prmh.plugins.training.loop import (
    OnStep,
    examples_of,
    optimise,
    save_merged,
    step_labels,
    summary,
    with_lora,
)


def train(
    items: list[LabelledSolution],
    base: str,
    out: Path,
    config: TrainConfig,
    *,
    resume: bool = False,
    on_step: OnStep | None = None,
) -> dict[str, Any]:
    """Train and save a PRM; returns a summary (losses per optimiser step, examples used)."""
    from prmh.plugins.hf_models import device_and_dtype, quiet_transformers, require_hf
    from prmh.registry import load_registry

    require_hf("prmh train")
    import torch
    from transformers import AutoTokenizer

    from prmh.plugins.hf_models import resolve_checkpoint

    _check(config, items)
    quiet_transformers()
    loss_fn = load_registry().create("loss", config.loss, dict(config.loss_options)).instance
    torch.manual_seed(config.seed)
    device, _ = device_and_dtype(config.device, config.dtype)
    path, _ = resolve_checkpoint(base, None, "--model PATH")
    tokenizer = AutoTokenizer.from_pretrained(path)
    if config.head == "implicit":
        from prmh.plugins.training.implicit import train_implicit

        return train_implicit(items, path, tokenizer, loss_fn, device, out, config, resume, on_step)
    lm = config.head == "lm"
    separator = config.separator or ("ки" if lm else "[PRM]")
    added = 0
    if len(tokenizer.encode(separator, add_special_tokens=False)) != 1:
        added = tokenizer.add_special_tokens({"additional_special_tokens": [separator]})
    backbone, head, recipe = _model(torch, path, tokenizer, separator, config, bool(added))
    examples = examples_of(recipe, items, config.max_length)
    if config.freeze_backbone:
        backbone.requires_grad_(False)
    elif config.lora:  # a new separator's embedding row is trained in full
        backbone = with_lora(backbone, config, ["embed_tokens"] if added else None)
    backbone.to(device)
    head.to(device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else None
    decoder = backbone.get_decoder() if lm else backbone

    def batch_loss(batch: list[int]) -> Any:
        chosen = [examples[i] for i in batch]
        return _batch_loss(torch, decoder, head, loss_fn, chosen, tokenizer, device, autocast)

    lengths = [len(e.ids) for e, _ in examples]
    modules = {"backbone": backbone, "head": head}
    step, losses = optimise(torch, modules, lengths, batch_loss, config, out, resume, on_step)
    _save(backbone, None if lm else head, tokenizer, out, config, separator)
    return summary(step, losses, len(examples), len(items), added_separator=bool(added))


def _check(config: TrainConfig, items: list[LabelledSolution]) -> None:
    """Refuse a configuration that cannot train, before any model is loaded."""
    if not items:
        raise PrmhError("no labelled solutions to train on.")
    if config.head not in ("value", "lm", "implicit"):
        raise PrmhError(f"--head must be value, lm or implicit, not {config.head!r}.")
    lm, implicit = config.head == "lm", config.head == "implicit"
    if lm and config.freeze_backbone:
        raise PrmhError("an lm head is part of the backbone: --freeze-backbone needs --head value.")
    if config.reference and not implicit:
        raise PrmhError("--reference is the implicit head's reference model: use --head implicit.")
    if implicit and (config.step_suffix is not None or config.separator):
        raise PrmhError("the implicit head reads no separator: drop --separator/--step-suffix.")
    if lm and config.loss == "wql":
        raise PrmhError("wql trains three quantile outputs: use --head value.")
    if lm and (config.joiner != "\n" or config.step_suffix is not None):
        raise PrmhError(
            "--joiner and --step-suffix shape the value head's layout: use --head value."
        )


def _model(
    torch: Any, path: Path, tokenizer: Any, separator: str, config: TrainConfig, added: bool
) -> tuple[Any, Any, Any]:
    """The backbone, the head read at each step, and the recipe that encodes solutions."""
    from transformers import AutoModel, AutoModelForCausalLM

    from prmh.plugins.prms.recipes import TaggedRecipe, value_head_recipe

    lm = config.head == "lm"
    model_class = AutoModelForCausalLM if lm else AutoModel
    backbone = model_class.from_pretrained(path, dtype=torch.float32)
    if added:
        backbone.resize_token_embeddings(len(tokenizer))
    if lm:  # Math-Shepherd's format: "question solution", " ки" after each step, "\n" between
        recipe = TaggedRecipe(
            tokenizer, template="{question} {solution}", suffix=f" {separator}", joiner="\n"
        )
        label_ids = [tokenizer.encode(t, add_special_tokens=False) for t in ("+", "-")]
        if any(len(ids) != 1 for ids in label_ids):
            raise PrmhError("an lm head reads the tokens '+' and '-'; this tokenizer splits them.")
        # the value is the logit difference of '+' and '-': softmax([+, -])[0] = sigmoid
        good_bad = [ids[0] for ids in label_ids]
        return backbone, _label_tokens(torch, backbone.get_output_embeddings(), good_bad), recipe
    recipe = value_head_recipe(
        tokenizer, separator, config.query_template, config.joiner, config.step_suffix
    )
    outputs = 3 if config.loss == "wql" else 1
    head = torch.nn.Linear(backbone.config.hidden_size, outputs)
    if config.init_head:  # every output starts as the given head: each quantile = its probability
        from safetensors.torch import load_file

        start = load_file(config.init_head)
        with torch.no_grad():
            head.weight.copy_(start["v_head.summary.weight"][:1].repeat(outputs, 1))
            head.bias.copy_(start["v_head.summary.bias"][:1].repeat(outputs))
    return backbone, head, recipe


def _batch_loss(
    torch: Any,
    backbone: Any,
    head: Any,
    loss_fn: Any,
    batch: list,
    tokenizer: Any,
    device: Any,
    autocast: Any,
) -> Any:
    from prmh.plugins.prms.batching import pack

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids, mask, _, positions = pack(torch, [e for e, _ in batch], pad, device)
    labels, step_mask = step_labels(torch, [y for _, y in batch], positions.shape, device)
    with autocast if autocast is not None else contextlib.nullcontext():
        hidden = backbone(input_ids=ids, attention_mask=mask).last_hidden_state
    gathered = hidden.float()[torch.arange(len(batch), device=device)[:, None], positions]
    values = head(gathered)
    values = values if values.shape[-1] > 1 else values.squeeze(-1)
    return loss_fn(values, labels, step_mask)


def _label_tokens(torch: Any, output: Any, good_bad: list[int]) -> Any:
    """An lm head read as a value: logit('+') - logit('-') at each tag."""

    class LabelTokens(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.output = output

        def forward(self, h: Any) -> Any:
            logits = h @ self.output.weight[good_bad].T
            if getattr(self.output, "bias", None) is not None:
                logits = logits + self.output.bias[good_bad]
            return (logits[..., 0] - logits[..., 1]).unsqueeze(-1)

    return LabelTokens()


def _save(
    backbone: Any, head: Any, tokenizer: Any, out: Path, config: TrainConfig, separator: str
) -> None:
    from safetensors.torch import save_file

    from prmh.prm_dirs import write_prm_config

    save_merged(backbone, tokenizer, out)
    if head is None:  # an lm head: a Math-Shepherd-style PRM
        options = {"step_tag": separator, "good_token": "+", "bad_token": "-", "joiner": "\n"}
        write_prm_config(out, "math-shepherd", options)
        return
    save_file(
        {
            "v_head.summary.weight": head.weight.detach().cpu().contiguous(),
            "v_head.summary.bias": head.bias.detach().cpu().contiguous(),
        },
        out / "value_head.safetensors",
    )
    options = {"separator": separator, "query_template": config.query_template}
    if config.joiner != "\n":
        options["joiner"] = config.joiner
    if config.step_suffix is not None:
        options["step_suffix"] = config.step_suffix
    write_prm_config(out, "value-head", options)
