"""What a training run is told: one frozen configuration for every trainer."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from prmh.errors import PrmhError

# settings as the command line names them, where it names them otherwise
FLAGS = {"learning_rate": "--lr"}


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a training run; each trainer reads the ones it uses."""

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

    def __post_init__(self) -> None:
        """Numbers no trainer can train with are refused before any model is loaded (a nan
        learning rate was a traceback from the optimiser, a nan beta a saved model of nan)."""
        least = {"batch_size": 1, "grad_accum": 1, "lora_r": 1, "max_length": 1, "save_every": 0}
        wrong = [(k, f"at least {n}") for k, n in least.items() if getattr(self, k) < n]
        if self.max_steps is not None and self.max_steps < 0:  # 0: save untrained (a baseline)
            wrong.append(("max_steps", "at least 0"))
        positive = ("epochs", "learning_rate", "beta", "lora_alpha")
        wrong += [(k, "a number > 0") for k in positive if not 0 < getattr(self, k) < math.inf]
        if not 0 <= self.warmup <= 1:
            wrong.append(("warmup", "in [0, 1]"))
        if wrong:
            name, rule = wrong[0]
            flag = FLAGS.get(name, "--" + name.replace("_", "-"))
            raise PrmhError(f"{flag} must be {rule}, got {getattr(self, name)}.")
