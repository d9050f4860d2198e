"""PRM training on transformers + peft + torch: a causal LM backbone with a linear value head
read at a separator after each step, the layout the ``value-head`` PRM recipe scores.

Solutions are encoded by the same recipe that scores them (``question\\n`` then the steps, each
followed by `` SEP``, one per line), so training and evaluation cannot disagree on format. The
separator is added to the tokenizer when it is not one token. Batches are built from solutions
of similar length (length buckets, their order shuffled per epoch from the seed); gradients
accumulate over ``grad_accum`` batches; the learning rate follows a cosine schedule after a
linear warmup. LoRA (on the attention's q and v projections, the new token's embedding trained
in full) or full fine-tuning; the head is always trained in full. bf16 autocast on GPU. A
checkpoint (trainable weights, optimiser, schedule, step) is written every ``save_every``
optimiser steps and at the end of each epoch; ``resume`` continues from it exactly. The saved
directory (LoRA merged) holds the backbone, ``value_head.safetensors``, the tokenizer and a
``prmh_prm.json``, so ``--prm DIR`` evaluates it.
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prmh.errors import PrmhError
from prmh.labels import LabelledSolution

CHECKPOINT = "checkpoint.pt"


@dataclass(frozen=True)
class TrainConfig:
    head: str = "value"
    loss: str = "bce"
    loss_options: tuple[tuple[str, Any], ...] = ()
    lora: bool = True
    lora_r: int = 8
    lora_alpha: int = 32
    epochs: float = 2.0
    max_steps: int | None = None
    learning_rate: float = 1e-4
    batch_size: int = 8
    grad_accum: int = 1
    warmup: float = 0.1
    max_length: int = 1024
    separator: str | None = None  # default: "[PRM]" for a value head, "ки" for an lm head
    joiner: str = "\n"  # value head: between steps
    step_suffix: str | None = None  # value head: after each step; default " " + separator
    query_template: str = "{question}"
    seed: int = 0
    save_every: int = 0
    init_head: str | None = None  # a value_head.safetensors to start from (calibration)
    reference: str | None = None  # implicit head: the reference LM (default: a copy of base)
    beta: float = 0.1  # implicit head: the starting scale of the log-likelihood ratio
    freeze_backbone: bool = False  # train the head alone
    lora_layers: str = "all"  # or "quarter": every fourth layer (3, 7, ...), as in calibration
    device: str = "auto"
    dtype: str = "auto"


def _batches(lengths: list[int], size: int, epoch: int, seed: int) -> list[list[int]]:
    """Length buckets: sort by length, cut into batches, shuffle the batches."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    batches = [order[i : i + size] for i in range(0, len(order), size)]
    random.Random(f"{seed}:{epoch}").shuffle(batches)
    return batches


def train(
    items: list[LabelledSolution],
    base: str,
    out: Path,
    config: TrainConfig,
    *,
    resume: bool = False,
    on_step: Callable[[int, int, float], None] | None = None,
) -> dict[str, Any]:
    """Train and save a PRM; returns a summary (losses per optimiser step, examples used)."""
    from prmh.plugins.hf_models import device_and_dtype, quiet_transformers, require_hf
    from prmh.registry import load_registry

    require_hf("prmh train")
    import torch
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    from prmh.plugins.hf_models import resolve_checkpoint
    from prmh.plugins.prms.recipes import TaggedRecipe, value_head_recipe

    if config.batch_size < 1 or config.grad_accum < 1 or config.learning_rate <= 0:
        raise PrmhError("batch_size and grad_accum must be at least 1 and the learning rate > 0.")
    if not items:
        raise PrmhError("no labelled solutions to train on.")
    if config.head not in ("value", "lm", "implicit"):
        raise PrmhError(f"--head must be value, lm or implicit, not {config.head!r}.")
    lm = config.head == "lm"
    implicit = config.head == "implicit"
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
    quiet_transformers()
    loss_fn = load_registry().create("loss", config.loss, dict(config.loss_options)).instance
    torch.manual_seed(config.seed)
    device, _ = device_and_dtype(config.device, config.dtype)
    path, _ = resolve_checkpoint(base, None)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if implicit:
        return _train_implicit(
            items, path, tokenizer, loss_fn, device, out, config, resume, on_step
        )
    separator = config.separator or ("ки" if lm else "[PRM]")
    added = 0
    if len(tokenizer.encode(separator, add_special_tokens=False)) != 1:
        added = tokenizer.add_special_tokens({"additional_special_tokens": [separator]})
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
        good_bad = [ids[0] for ids in label_ids]
    else:
        recipe = value_head_recipe(
            tokenizer, separator, config.query_template, config.joiner, config.step_suffix
        )
    examples = _examples(recipe, items, config.max_length)
    outputs = 3 if config.loss == "wql" else 1
    head = torch.nn.Linear(backbone.config.hidden_size, outputs)
    if config.init_head:  # every output starts as the given head: each quantile = its probability
        from safetensors.torch import load_file

        start = load_file(config.init_head)
        with torch.no_grad():
            head.weight.copy_(start["v_head.summary.weight"][:1].repeat(outputs, 1))
            head.bias.copy_(start["v_head.summary.bias"][:1].repeat(outputs))
    if lm:  # the value is the logit difference of '+' and '-': softmax([+, -])[0] = sigmoid
        head = _label_tokens(torch, backbone.get_output_embeddings(), good_bad)
    if config.freeze_backbone:
        backbone.requires_grad_(False)
    elif config.lora:  # a new separator's embedding row is trained in full
        backbone = _with_lora(backbone, config, ["embed_tokens"] if added else None)
    backbone.to(device)
    head.to(device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else None
    decoder = backbone.get_decoder() if lm else backbone

    def batch_loss(batch: list[int]) -> Any:
        chosen = [examples[i] for i in batch]
        return _batch_loss(torch, decoder, head, loss_fn, chosen, tokenizer, device, autocast)

    step, losses = _optimise(
        torch,
        {"backbone": backbone, "head": head},
        [len(e.ids) for e, _ in examples],
        batch_loss,
        config,
        out,
        resume,
        on_step,
    )
    _save(backbone, None if lm else head, tokenizer, out, config, separator)
    return _summary(step, losses, len(examples), len(items), added_separator=bool(added))


def _examples(recipe: Any, items: list[LabelledSolution], max_length: int) -> list[tuple]:
    """(encoded solution, step labels) for every item that fits in ``max_length`` tokens."""
    examples = []
    for item in items:
        enc = recipe.encode(item.question, list(item.steps))
        if len(enc.ids) <= max_length:
            examples.append((enc, item.labels))
    if not examples:
        raise PrmhError(f"every solution is longer than max_length={max_length}.")
    return examples


def _summary(
    step: int, losses: list[float], used: int, given: int, added_separator: bool = False
) -> dict[str, Any]:
    return {
        "steps": step,
        "losses": losses,
        "examples": used,
        "skipped_too_long": given - used,
        "added_separator": added_separator,
    }


def _train_implicit(
    items: list[LabelledSolution],
    path: Path,
    tokenizer: Any,
    loss_fn: Any,
    device: Any,
    out: Path,
    config: TrainConfig,
    resume: bool,
    on_step: Callable[[int, int, float], None] | None,
) -> dict[str, Any]:
    """The implicit head: the model at ``path`` is the policy, compared with a frozen
    reference; its (scale, bias) pairs map each step's summed log-likelihood ratio to a logit."""
    import torch
    from transformers import AutoModelForCausalLM

    from prmh.plugins.hf_models import resolve_checkpoint
    from prmh.plugins.prms.hf import pack
    from prmh.plugins.prms.implicit import (
        ImplicitRecipe,
        check_vocabulary,
        step_values,
        token_log_ratios,
    )
    from prmh.registry import read_prm_config, write_prm_config

    ref_path, _ = resolve_checkpoint(config.reference or str(path), None)
    check_vocabulary(tokenizer, path, ref_path)
    policy = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    reference = AutoModelForCausalLM.from_pretrained(ref_path, dtype=torch.float32).eval()
    reference.requires_grad_(False)
    examples = _examples(
        ImplicitRecipe(tokenizer, config.query_template, config.joiner), items, config.max_length
    )
    outputs = 3 if config.loss == "wql" else 1
    scale, bias = [config.beta] * outputs, [0.0] * outputs
    if config.init_head:  # every output starts as the given PRM's first pair
        options = read_prm_config(config.init_head).get("options", {})
        scale, bias = [options["scale"][0]] * outputs, [options["bias"][0]] * outputs
    head = torch.nn.ParameterDict(
        {
            "scale": torch.nn.Parameter(torch.tensor(scale)),
            "bias": torch.nn.Parameter(torch.tensor(bias)),
        }
    )
    if config.freeze_backbone:
        policy.requires_grad_(False)
    elif config.lora:
        policy = _with_lora(policy, config)
    for m in (policy, reference, head):
        m.to(device)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def batch_loss(batch: list[int]) -> Any:
        chosen = [examples[i] for i in batch]
        ids, mask, starts, positions = pack(torch, [e for e, _ in chosen], pad, device)
        labels, step_mask = _step_labels(torch, [y for _, y in chosen], positions.shape, device)
        q = step_values(
            torch, token_log_ratios(torch, policy, reference, ids, mask), starts, positions
        )
        values = q[..., None] * head["scale"] + head["bias"]
        values = values if outputs > 1 else values.squeeze(-1)
        return loss_fn(values, labels, step_mask)

    step, losses = _optimise(
        torch,
        {"policy": policy, "head": head},
        [len(e.ids) for e, _ in examples],
        batch_loss,
        config,
        out,
        resume,
        on_step,
    )
    _save_merged(policy, tokenizer, out)
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
    return _summary(step, losses, len(examples), len(items))


def _optimise(
    torch: Any,
    modules: dict[str, Any],
    lengths: list[int],
    batch_loss: Callable[[list[int]], Any],
    config: TrainConfig,
    out: Path,
    resume: bool,
    on_step: Callable[[int, int, float], None] | None,
) -> tuple[int, list[float]]:
    """The training loop both trainers share: length-bucketed batches, gradient accumulation,
    AdamW with a cosine schedule after warmup, clipping, checkpoints of every trainable weight
    with the optimiser, schedule and RNG state, and an exact resume."""
    from transformers import get_cosine_schedule_with_warmup

    seen: set[int] = set()
    params = [
        p
        for m in modules.values()
        for p in m.parameters()
        if p.requires_grad and id(p) not in seen and not seen.add(id(p))
    ]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate)
    per_epoch = math.ceil(math.ceil(len(lengths) / config.batch_size) / config.grad_accum)
    total = (
        config.max_steps if config.max_steps is not None else math.ceil(per_epoch * config.epochs)
    )
    scheduler = get_cosine_schedule_with_warmup(
        optimizer, int(config.warmup * total), max(1, total)
    )
    out.mkdir(parents=True, exist_ok=True)
    step, losses = 0, []
    trainable = {
        name: {n for n, p in m.named_parameters() if p.requires_grad} for name, m in modules.items()
    }
    if resume and (out / CHECKPOINT).is_file():
        saved = _load_checkpoint(torch, out / CHECKPOINT)
        for name, m in modules.items():
            m.load_state_dict(saved["modules"][name], strict=False)
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        step, losses = saved["step"], saved["losses"]
        torch.set_rng_state(saved["rng"])

    def checkpoint() -> None:
        tmp = out / (CHECKPOINT + ".tmp")
        state = {
            name: {n: p for n, p in m.state_dict().items() if n in trainable[name]}
            for name, m in modules.items()
        }
        torch.save(
            {
                "modules": state,
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "step": step,
                "losses": losses,
                "rng": torch.get_rng_state(),
            },
            tmp,
        )
        tmp.replace(out / CHECKPOINT)

    for m in modules.values():
        m.train()
    micro = 0
    epoch = 0
    while step < total:
        for batch in _batches(lengths, config.batch_size, epoch, config.seed):
            if micro < step * config.grad_accum:  # resuming: replay the order, skip the work
                micro += 1
                continue
            loss = batch_loss(batch) / config.grad_accum
            loss.backward()
            micro += 1
            if micro % config.grad_accum == 0:
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
                step += 1
                losses.append(loss.item() * config.grad_accum)
                if on_step is not None:
                    on_step(step, total, losses[-1])
                if config.save_every and step % config.save_every == 0:
                    checkpoint()
                if step >= total:
                    break
        epoch += 1
        checkpoint()
    return step, losses


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
    from prmh.plugins.prms.hf import pack

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids, mask, _, positions = pack(torch, [e for e, _ in batch], pad, device)
    labels, step_mask = _step_labels(torch, [y for _, y in batch], positions.shape, device)
    with autocast if autocast is not None else contextlib.nullcontext():
        hidden = backbone(input_ids=ids, attention_mask=mask).last_hidden_state
    gathered = hidden.float()[torch.arange(len(batch), device=device)[:, None], positions]
    values = head(gathered)
    values = values if values.shape[-1] > 1 else values.squeeze(-1)
    return loss_fn(values, labels, step_mask)


def _step_labels(torch: Any, labels: list, shape: Any, device: Any) -> tuple[Any, Any]:
    """Per-step targets padded to ``shape`` and the mask of real steps."""
    targets, mask = torch.zeros(shape), torch.zeros(shape)
    for row, y in enumerate(labels):
        targets[row, : len(y)] = torch.tensor(y)
        mask[row, : len(y)] = 1
    return targets.to(device), mask.to(device)


def _with_lora(model: Any, config: TrainConfig, modules_to_save: list[str] | None = None) -> Any:
    from peft import LoraConfig, get_peft_model

    return get_peft_model(
        model,
        LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=0.1,
            target_modules=_targets(model, config.lora_layers),
            modules_to_save=modules_to_save,
        ),
    )


def _save_merged(model: Any, tokenizer: Any, out: Path) -> None:
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

    from prmh.registry import write_prm_config

    _save_merged(backbone, tokenizer, out)
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


def train_generator(
    pairs: list[tuple[str, str]],
    base: str,
    out: Path,
    config: TrainConfig,
    *,
    resume: bool = False,
    on_step: Callable[[int, int, float], None] | None = None,
) -> dict[str, Any]:
    """Supervised fine-tuning of a causal LM on (prompt, completion) pairs: the loss is on the
    completion's tokens and the end-of-sequence token only. Saves a model ``-G model=OUT`` reads
    (LoRA merged)."""
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
    path, _ = resolve_checkpoint(base, None)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    eos = tokenizer.eos_token_id
    if eos is None:
        raise PrmhError(f"the tokenizer of {base!r} has no end-of-sequence token.")
    examples = []
    for prompt, completion in pairs:
        context = tokenizer.encode(prompt)
        target = [*tokenizer.encode(completion, add_special_tokens=False), eos]
        if len(context) + len(target) <= config.max_length:
            examples.append((context + target, len(context)))
    if not examples:
        raise PrmhError(f"every example is longer than max_length={config.max_length}.")
    if config.lora:
        model = _with_lora(model, config)
    model.to(device)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos

    def batch_loss(batch: list[int]) -> Any:
        chosen = [examples[i] for i in batch]
        width = max(len(ids) for ids, _ in chosen)
        ids = torch.full((len(chosen), width), pad, dtype=torch.long)
        labels = torch.full((len(chosen), width), -100, dtype=torch.long)
        mask = torch.zeros((len(chosen), width), dtype=torch.long)
        for row, (seq, prompt_length) in enumerate(chosen):
            ids[row, : len(seq)] = torch.tensor(seq)
            labels[row, prompt_length : len(seq)] = torch.tensor(seq[prompt_length:])
            mask[row, : len(seq)] = 1
        return model(
            input_ids=ids.to(device), attention_mask=mask.to(device), labels=labels.to(device)
        ).loss

    step, losses = _optimise(
        torch,
        {"model": model},
        [len(ids) for ids, _ in examples],
        batch_loss,
        config,
        out,
        resume,
        on_step,
    )
    _save_merged(model, tokenizer, out)
    return {
        "steps": step,
        "losses": losses,
        "examples": len(examples),
        "skipped_too_long": len(pairs) - len(examples),
    }
