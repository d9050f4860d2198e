"""Calibrating a released PRM (``prmh calibrate --prm Qwen/Qwen2.5-Math-PRM-7B``) as the
calibration release does (young-j-park/prm-calibration ``finetune_mse_prm.py`` at 4abcb99): its
classifier or label-token head becomes three quantile outputs that all start as the PRM's own
score (``prmh.plugins.prms.heads``); LoRA (r from ``--lora-r``, 2; alpha 32; dropout 0.1) on
the head's linear layers and on q_proj/v_proj of every fourth layer (3, 7, ...; ``--layers
all`` for every layer); trained with ``wql`` on rollout success rates, each read where the
PRM's recipe reads its step. Where the release appends a bin token after the step mark and
reads the prediction there, prmh reads every step of a solution in one pass at the same
positions, which a causal model scores alike. Saved as a PEFT adapter with a ``prmh_prm.json``
naming the PRM, so ``--prm OUT`` (or ``-P calibrated=OUT``) loads it.
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import Any

from prmh.errors import PrmhError
from prmh.labels import LabelledSolution
from prmh.plugins.hf_models import peft_model
from prmh.plugins.training.config import TrainConfig
from prmh.plugins.training.loop import OnStep, examples_of, optimise, step_labels, summary


def convertible(component: Any) -> Any:
    """``component`` if it is a released PRM whose classifier or lm head ``calibrate_released``
    can convert (a simulated PRM has none: it raised AttributeError after a run had opened)."""
    from prmh.plugins.prms.hf import HFScorer

    scorer = getattr(component.instance, "scorer", None)
    if not isinstance(scorer, HFScorer) or scorer.head == "value" or scorer.calibrated:
        raise PrmhError(
            f"prmh calibrate converts a released PRM's classifier or lm head; "
            f"{component.entry.name!r} has none (a value-head PRM prmh trained is calibrated "
            "from its directory)."
        )
    return component


def calibrate_released(
    component: Any,
    items: list[LabelledSolution],
    out: Path,
    config: TrainConfig,
    on_step: OnStep | None = None,
) -> dict[str, Any]:
    """Fit a calibrated adapter for the PRM ``component`` (a registry component of a
    transformers recipe with a classifier or lm head) and save it in ``out``."""
    import torch

    from prmh.prm_dirs import write_prm_config

    convertible(component)
    scorer, recipe = component.instance.scorer, component.instance.recipe
    torch.manual_seed(config.seed)
    targets = _convert(torch, scorer, getattr(recipe, "good_bad", None))
    model = _lora(scorer.model, targets, config)
    examples = examples_of(recipe, items, min(config.max_length, scorer.max_length))
    loss_fn = _wql()
    pad = scorer.tokenizer.pad_token_id if scorer.tokenizer.pad_token_id is not None else 0
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16) if scorer.device.type == "cuda" else None
    )

    def batch_loss(batch: list[int]) -> Any:
        from prmh.plugins.prms.batching import pack

        chosen = [examples[i] for i in batch]
        ids, mask, _, positions = pack(torch, [e for e, _ in chosen], pad, scorer.device)
        labels, step_mask = step_labels(torch, [y for _, y in chosen], positions.shape, ids.device)
        with autocast if autocast is not None else contextlib.nullcontext():
            hidden = scorer.backbone(input_ids=ids, attention_mask=mask).last_hidden_state
        rows = torch.arange(len(batch), device=ids.device)[:, None]
        head = model.get_output_embeddings() if scorer.head == "lm" else model.head
        return loss_fn(head(hidden[rows, positions]).float(), labels, step_mask)

    lengths = [len(e.ids) for e, _ in examples]
    step, losses = optimise(torch, {"model": model}, lengths, batch_loss, config, out, False,
                            on_step)  # fmt: skip
    model.eval()
    with warnings.catch_warnings():  # peft's notes on saving the converted head in full
        warnings.simplefilter("ignore", UserWarning)
        model.save_pretrained(out)
    options = {k: v for k, v in component.args.items() if k != "calibrated"}
    write_prm_config(out, component.entry.name, {**options, "calibrated": "."})
    return summary(step, losses, len(examples), len(items))


def _convert(torch: Any, scorer: Any, good_bad: tuple[int, int] | None) -> list[str]:
    """Turn the scorer's head into three quantile outputs; the names of its linear layers."""
    from prmh.plugins.prms.heads import QUANTILE_LEVELS, logistic_rows, to_quantiles

    model = scorer.model
    if scorer.head == "lm":
        assert good_bad is not None
        output = model.get_output_embeddings()
        model.set_output_embeddings(logistic_rows(torch, output, [good_bad[0]], good_bad[1]))
        head = model.get_output_embeddings()
    else:
        model.place(to_quantiles(torch, model.head, scorer.positive).to(scorer.device))
        head = model.head
    scorer.quantile_levels = QUANTILE_LEVELS
    ids = {id(m) for m in head.modules() if isinstance(m, torch.nn.Linear)}
    return [name for name, m in model.named_modules() if id(m) in ids]


def _lora(model: Any, head_modules: list[str], config: TrainConfig) -> Any:
    from peft import LoraConfig

    count = (model.config if hasattr(model, "config") else model.model.config).num_hidden_layers
    every = [i for i in range(count) if i % 4 == 3] or [count - 1]
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=32,
        lora_dropout=0.1,
        target_modules=[*head_modules, "q_proj", "v_proj"],  # head modules: exact names
        layers_to_transform=None if config.lora_layers == "all" else every,
    )
    return peft_model(model, lora)


def _wql() -> Any:
    from prmh.registry import load_registry

    return load_registry().create("loss", "wql").instance
