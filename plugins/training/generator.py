"""Generator training: supervised fine-tuning of a causal LM on (prompt, completion) pairs, the
loss on the completion's tokens and the end-of-sequence token only. Saves a model that
``-G model=OUT`` reads (LoRA merged)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prmh.errors import PrmhError
from prmh.plugins.training.config import TrainConfig
from prmh.plugins.training.loop import OnStep, optimise, save_merged, with_lora


def train_generator(
    pairs: list[tuple[str, str]],
    base: str,
    out: Path,
    config: TrainConfig,
    *,
    resume: bool = False,
    on_step: OnStep | None = None,
) -> dict[str, Any]:
    """Fine-tune ``base`` on ``pairs`` and save it to ``out``; returns a summary."""
    from prmh.plugins.hf_models import quiet_transformers, require_hf, resolve_checkpoint

    require_hf("generator training")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from prmh.plugins.hf_models import device_and_dtype

    if not pairs:
        raise PrmhError("no (prompt, completion) pairs to train on.")
    quiet_transformers()
    torch.manual_seed(config.seed)
    device, _ = device_and_dtype(config.device, config.dtype)
    path, _ = resolve_checkpoint(base, None, "--model PATH")
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    eos = tokenizer.eos_token_id
    if eos is None:
        raise PrmhError(f"the tokenizer of {base!r} has no end-of-sequence token.")
    examples = _examples(tokenizer, pairs, eos, config.max_length)
    if config.lora:
        model = with_lora(model, config)
    model.to(device)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos

    def batch_loss(batch: list[int]) -> Any:
        ids, mask, labels = _pad(torch, [examples[i] for i in batch], pad)
        return model(
            input_ids=ids.to(device), attention_mask=mask.to(device), labels=labels.to(device)
        ).loss

    lengths = [len(ids) for ids, _ in examples]
    step, losses = optimise(
        torch, {"model": model}, lengths, batch_loss, config, out, resume, on_step
    )
    save_merged(model, tokenizer, out)
    return {
        "steps": step,
        "losses": losses,
        "examples": len(examples),
        "skipped_too_long": len(pairs) - len(examples),
    }


def _examples(
    tokenizer: Any, pairs: list[tuple[str, str]], eos: int, max_length: int
) -> list[tuple[list[int], int]]:
    """(prompt + completion + eos ids, prompt length) for every pair that fits."""
    examples = []
    for prompt, completion in pairs:
        context = tokenizer.encode(prompt)
        target = [*tokenizer.encode(completion, add_special_tokens=False), eos]
        if len(context) + len(target) <= max_length:
            examples.append((context + target, len(context)))
    if not examples:
        raise PrmhError(f"every example is longer than max_length={max_length}.")
    return examples


def _pad(torch: Any, chosen: list[tuple[list[int], int]], pad: int) -> tuple[Any, Any, Any]:
    """Ids, attention mask and labels (-100 on the prompt and padding) of a batch."""
    width = max(len(ids) for ids, _ in chosen)
    ids = torch.full((len(chosen), width), pad, dtype=torch.long)
    labels = torch.full((len(chosen), width), -100, dtype=torch.long)
    mask = torch.zeros((len(chosen), width), dtype=torch.long)
    for row, (seq, prompt_length) in enumerate(chosen):
        ids[row, : len(seq)] = torch.tensor(seq)
        labels[row, prompt_length : len(seq)] = torch.tensor(seq[prompt_length:])
        mask[row, : len(seq)] = 1
    return ids, mask, labels
