"""The implicit PRM's training: the model is the policy, compared with a frozen reference; its
(scale, bias) pairs map each step's summed log-likelihood ratio to a logit. Saved as the policy
(LoRA merged), ``reference/`` and a ``prmh_prm.json`` the ``implicit`` recipe reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


def train_implicit(
    items: list[LabelledSolution],
    path: Path,
    tokenizer: Any,
    loss_fn: Any,
    device: Any,
    out: Path,
    config: TrainConfig,
    resume: bool,
    on_step: OnStep | None,
) -> dict[str, Any]:
    """Train the policy at ``path`` (and the head) against its reference; save the PRM."""
    import torch
    from transformers import AutoModelForCausalLM

    from prmh.plugins.hf_models import resolve_checkpoint
    from prmh.plugins.prms.batching import pack
    from prmh.plugins.prms.implicit import (
        ImplicitRecipe,
        check_vocabulary,
        step_values,
        token_log_ratios,
    )

    ref_path, _ = resolve_checkpoint(config.reference or str(path), None, "--reference PATH")
    check_vocabulary(tokenizer, path, ref_path)
    policy = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    reference = AutoModelForCausalLM.from_pretrained(ref_path, dtype=torch.float32).eval()
    reference.requires_grad_(False)
    recipe = ImplicitRecipe(tokenizer, config.query_template, config.joiner)
    examples = examples_of(recipe, items, config.max_length)
    head = _head(torch, config)
    if config.freeze_backbone:
        policy.requires_grad_(False)
    elif config.lora:
        policy = with_lora(policy, config)
    for m in (policy, reference, head):
        m.to(device)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def batch_loss(batch: list[int]) -> Any:
        chosen = [examples[i] for i in batch]
        ids, mask, starts, positions = pack(torch, [e for e, _ in chosen], pad, device)
        labels, step_mask = step_labels(torch, [y for _, y in chosen], positions.shape, device)
        ratios = token_log_ratios(torch, policy, reference, ids, mask)
        values = step_values(torch, ratios, starts, positions)[..., None] * head["scale"]
        values = values + head["bias"]
        return loss_fn(values if values.shape[-1] > 1 else values.squeeze(-1), labels, step_mask)

    lengths = [len(e.ids) for e, _ in examples]
    modules = {"policy": policy, "head": head}
    step, losses = optimise(torch, modules, lengths, batch_loss, config, out, resume, on_step)
    _save(policy, reference, head, tokenizer, out, config)
    return summary(step, losses, len(examples), len(items))


def _head(torch: Any, config: TrainConfig) -> Any:
    """(scale, bias) per output: beta and 0, or the first pair of the PRM to start from."""
    from prmh.prm_dirs import read_prm_config

    outputs = 3 if config.loss == "wql" else 1
    scale, bias = [config.beta] * outputs, [0.0] * outputs
    if config.init_head:  # every output starts as the given PRM's first pair
        options = read_prm_config(config.init_head).get("options", {})
        scale, bias = [options["scale"][0]] * outputs, [options["bias"][0]] * outputs
    return torch.nn.ParameterDict(
        {
            "scale": torch.nn.Parameter(torch.tensor(scale)),
            "bias": torch.nn.Parameter(torch.tensor(bias)),
        }
    )


def _save(
    policy: Any, reference: Any, head: Any, tokenizer: Any, out: Path, config: TrainConfig
) -> None:
    from prmh.prm_dirs import write_prm_config

    save_merged(policy, tokenizer, out)
    reference.save_pretrained(out / "reference")
    tokenizer.save_pretrained(out / "reference")
    options = {
        "reference": "reference",
        "query_template": config.query_template,
        "joiner": config.joiner,
        "scale": head["scale"].detach().cpu().tolist(),
        "bias": head["bias"].detach().cpu().tolist(),
    }
    write_prm_config(out, "implicit", options)
