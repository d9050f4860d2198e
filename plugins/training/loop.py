"""The training loop every trainer shares, and what they share around it: length-bucketed
batches, gradient accumulation, AdamW with a cosine schedule after warmup, clipping, checkpoints
(every trainable weight with the optimiser, schedule and RNG state) and an exact resume; LoRA
adapters and saving with them merged."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prmh.errors import PrmhError
from prmh.labels import LabelledSolution
from prmh.plugins.training.config import TrainConfig

CHECKPOINT = "checkpoint.pt"
OnStep = Callable[[int, int, float], None]


def _batches(lengths: list[int], size: int, epoch: int, seed: int) -> list[list[int]]:
    """Length buckets: sort by length, cut into batches, shuffle the batches."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    batches = [order[i : i + size] for i in range(0, len(order), size)]
    random.Random(f"{seed}:{epoch}").shuffle(batches)
    return batches


def optimise(
    torch: Any,
    modules: dict[str, Any],
    lengths: list[int],
    batch_loss: Callable[[list[int]], Any],
    config: TrainConfig,
    out: Path,
    resume: bool,
    on_step: OnStep | None,
) -> tuple[int, list[float]]:
    """Train ``modules`` on examples of the given ``lengths`` (``batch_loss`` of a batch of
    their indices); returns the optimiser steps taken and the loss of each."""
    state = _State(torch, modules, len(lengths), config, out)
    if resume and (out / CHECKPOINT).is_file():
        state.restore()
    for m in modules.values():
        m.train()
    micro = epoch = 0
    while state.step < state.total:
        for batch in _batches(lengths, config.batch_size, epoch, config.seed):
            if micro < state.step * config.grad_accum:  # resuming: replay the order, skip work
                micro += 1
                continue
            loss = batch_loss(batch) / config.grad_accum
            loss.backward()
            micro += 1
            if micro % config.grad_accum == 0:
                state.advance(loss.item() * config.grad_accum)
                if on_step is not None:
                    on_step(state.step, state.total, state.losses[-1])
                if config.save_every and state.step % config.save_every == 0:
                    state.checkpoint()
                if state.step >= state.total:
                    break
        epoch += 1
        state.checkpoint()
    return state.step, state.losses


class _State:
    """The optimiser, its schedule, the step count and losses, and their checkpoint."""

    def __init__(
        self, torch: Any, modules: dict[str, Any], count: int, config: TrainConfig, out: Path
    ):
        from transformers import get_cosine_schedule_with_warmup

        self.torch, self.modules, self.out = torch, modules, out
        seen: set[int] = set()
        self.params = [
            p
            for m in modules.values()
            for p in m.parameters()
            if p.requires_grad and id(p) not in seen and not seen.add(id(p))
        ]
        self.optimizer = torch.optim.AdamW(self.params, lr=config.learning_rate)
        per_epoch = math.ceil(math.ceil(count / config.batch_size) / config.grad_accum)
        self.total = (
            config.max_steps
            if config.max_steps is not None
            else math.ceil(per_epoch * config.epochs)
        )
        self.scheduler = get_cosine_schedule_with_warmup(
            self.optimizer, int(config.warmup * self.total), max(1, self.total)
        )
        out.mkdir(parents=True, exist_ok=True)
        self.step, self.losses = 0, []
        self.trainable = {
            name: {n for n, p in m.named_parameters() if p.requires_grad}
            for name, m in modules.items()
        }

    def advance(self, loss: float) -> None:
        self.torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad()
        self.step += 1
        self.losses.append(loss)

    def restore(self) -> None:
        saved = _load_checkpoint(self.torch, self.out / CHECKPOINT)
        for name, m in self.modules.items():
            m.load_state_dict(saved["modules"][name], strict=False)
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        self.step, self.losses = saved["step"], saved["losses"]
        self.torch.set_rng_state(saved["rng"])

    def checkpoint(self) -> None:
        tmp = self.out / (CHECKPOINT + ".tmp")
        state = {
            name: {n: p for n, p in m.state_dict().items() if n in self.trainable[name]}
            for name, m in self.modules.items()
        }
        self.torch.save(
            {
                "modules": state,
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "step": self.step,
                "losses": self.losses,
                "rng": self.torch.get_rng_state(),
            },
            tmp,
        )
        tmp.replace(self.out / CHECKPOINT)


def _load_checkpoint(torch: Any, path: Path) -> dict[str, Any]:
    """A checkpoint read as data: tensors, numbers, text and containers only (torch's
    ``weights_only`` loader), so a crafted file cannot run code."""
    import pickle

    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as e:
        raise PrmhError(
            f"{path} is not a training checkpoint prmh can read as plain data "
            f"({type(e).__name__}: {str(e).splitlines()[0][:160]}); delete it to train "
            "from the start, or resume from a checkpoint prmh wrote."
        ) from None
    needed = ("modules", "optimizer", "scheduler", "step", "losses", "rng")
    if not isinstance(saved, dict) or any(k not in saved for k in needed):
        raise PrmhError(f"{path} is not a prmh training checkpoint (it lacks {needed}).")
    return saved


def with_lora(model: Any, config: TrainConfig, modules_to_save: list[str] | None = None) -> Any:
    from peft import LoraConfig

    from prmh.plugins.hf_models import peft_model

    return peft_model(
        model,
        LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=0.1,
            target_modules=_targets(model, config.lora_layers),
            modules_to_save=modules_to_save,
        ),
    )


def save_merged(model: Any, tokenizer: Any, out: Path) -> None:
    """The model with any LoRA weights merged in, and its tokenizer."""
    merged = model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
    merged.eval()
    merged.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _targets(model: Any, which: str) -> list[str]:
    """LoRA targets: q and v projections of every layer, or of every fourth (3, 7, ...)."""
    if which == "all":
        return ["q_proj", "v_proj"]
    if which != "quarter":
        raise PrmhError(f"lora_layers must be all or quarter, not {which!r}.")
    count = model.config.num_hidden_layers
    layers = [i for i in range(count) if i % 4 == 3] or [count - 1]
    return [f"layers.{i}.self_attn.{m}" for i in layers for m in ("q_proj", "v_proj")]


def examples_of(recipe: Any, items: list[LabelledSolution], max_length: int) -> list[tuple]:
    """(encoded solution, step labels) for every item that fits in ``max_length`` tokens."""
    examples = []
    for item in items:
        enc = recipe.encode(item.question, list(item.steps))
        if len(enc.ids) <= max_length:
            examples.append((enc, item.labels))
    if not examples:
        raise PrmhError(f"every solution is longer than max_length={max_length}.")
    return examples


def summary(
    step: int, losses: list[float], used: int, given: int, added_separator: bool = False
) -> dict[str, Any]:
    return {
        "steps": step,
        "losses": losses,
        "examples": used,
        "skipped_too_long": given - used,
        "added_separator": added_separator,
    }


def step_labels(torch: Any, labels: list, shape: Any, device: Any) -> tuple[Any, Any]:
    """Per-step targets padded to ``shape`` and the mask of real steps."""
    targets, mask = torch.zeros(shape), torch.zeros(shape)
    for row, y in enumerate(labels):
        targets[row, : len(y)] = torch.tensor(y)
        mask[row, : len(y)] = 1
    return targets.to(device), mask.to(device)
