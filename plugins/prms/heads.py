"""The heads a PRM reads on its hidden states, loaded from checkpoint tensors without remote code,
and their conversion into calibrated quantile heads.

Conversion follows the calibration release's ``convert_to_quantile_regression_head`` (young-j-
park/prm-calibration ``prm/qwen.py``, ``prm/shepherd.py``, ``prm/reasoneval.py`` at 4abcb99):
a head's class (or label-token) logits become M = 3 outputs read through a sigmoid, one per
quantile (0.1, 0.5, 0.9), every output starting as the original PRM's score:

- Qwen's MLP ``score`` (Linear, ReLU, Linear(2)): the last layer's rows become w_good - w_bad
  and its biases b_good - b_bad, so sigmoid(z) = softmax([bad, good])[good] exactly;
- an LM head read at two label tokens (Math-Shepherd): rows w_+ - w_-, biases b_+ - b_- (0
  without a bias; the release leaves the new bias at its random initial value);
- ReasonEval's 3-class ``score_head``: rows ((w_1 - w_0) + (w_2 - w_0)) / 2 (the release's
  rule; its validity p_1 + p_2 has no exact logistic form), biases likewise.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prmh.errors import PrmhError
from prmh.files import read_json

QUANTILE_LEVELS = (0.1, 0.5, 0.9)
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def read_tensors(directory: Path, prefix: str) -> dict[str, Any]:
    """Every tensor whose name starts with ``prefix`` in a checkpoint's weight files."""
    from safetensors import safe_open

    files: list[Path] = []
    for index in directory.glob("*.index.json"):
        try:
            names = set(read_json(index)["weight_map"].values())
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise PrmhError(f"{index} is not a weight index ({type(e).__name__}: {e}).") from None
        outside = [f for f in names if not isinstance(f, str) or Path(f).name != f]
        if outside:
            raise PrmhError(f"{index} names weight files outside its folder: {outside[:3]}.")
        shards = [directory / f for f in sorted(names)]
        missing = [p.name for p in shards if not p.is_file()]
        if missing:
            raise PrmhError(f"{index} names weight files that are not there: {missing[:3]}.")
        files += shards
    files += [directory / f for f in WEIGHT_FILES if (directory / f).is_file()]
    files += sorted(p for p in directory.glob("*.safetensors") if p not in files)
    found: dict[str, Any] = {}
    for file in dict.fromkeys(files):
        if file.suffix == ".safetensors":
            with safe_open(str(file), framework="pt") as f:
                found.update(
                    {k[len(prefix) :]: f.get_tensor(k) for k in f.keys() if k.startswith(prefix)}
                )
        elif file.suffix == ".bin":
            import torch

            state = torch.load(file, map_location="cpu", weights_only=True)
            found.update({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})
    return found


def load_head(
    torch: Any, path: Path, model: str, hidden: int, head: str, key: str, positive: Sequence[int]
) -> tuple[Any, bool]:
    """The classifier or value head stored under ``key``, and whether it outputs quantiles (a
    value head with three outputs is a calibrated quantile head: 0.1, 0.5, 0.9)."""
    weights = read_tensors(path, key + ".")
    if not weights:
        raise PrmhError(
            f"checkpoint {model!r} has no {head} head weights named {key}.*; it is not a "
            f"{head}-head PRM, or its head is stored under another name (-P head_key=...)."
        )
    quantiles = False
    if head == "classifier" and "weight" not in weights:
        layer = torch.nn.Sequential(
            torch.nn.Linear(hidden, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 2)
        )
    elif head == "classifier":
        classes = weights["weight"].shape[0]
        if not all(0 <= i < classes for i in positive):
            raise PrmhError(
                f"the classifier head of {model!r} has {classes} classes; positive_index "
                f"{list(positive)} is not among them."
            )
        layer = torch.nn.Linear(hidden, classes, bias="bias" in weights)
    else:
        outputs = weights["weight"].shape[0] if "weight" in weights else 1
        if outputs not in (1, len(QUANTILE_LEVELS)):
            raise PrmhError(f"a value head has 1 or 3 outputs, not {outputs}.")
        layer = torch.nn.Linear(hidden, outputs)
        quantiles = outputs > 1
    try:
        layer.load_state_dict(weights)
    except RuntimeError as e:
        raise PrmhError(f"the {head} head of {model!r} does not fit: {e}") from e
    return layer, quantiles


def logistic_rows(torch: Any, layer: Any, good: Sequence[int], bad: int) -> Any:
    """Linear(d, 3) whose every row is mean(w_g - w_bad for g in good) (biases likewise)."""
    weight = torch.stack([layer.weight[g] - layer.weight[bad] for g in good]).mean(0)
    out = torch.nn.Linear(layer.in_features, len(QUANTILE_LEVELS), dtype=layer.weight.dtype)
    with torch.no_grad():
        out.weight.copy_(weight.repeat(len(QUANTILE_LEVELS), 1))
        if getattr(layer, "bias", None) is not None:
            bias = torch.stack([layer.bias[g] - layer.bias[bad] for g in good]).mean(0)
            out.bias.copy_(bias.repeat(len(QUANTILE_LEVELS)))
        else:
            out.bias.zero_()
    return out.to(layer.weight.device)


def to_quantiles(torch: Any, layer: Any, positive: Sequence[int], bad: int = 0) -> Any:
    """A classifier head (Qwen's MLP, or a linear class head) as a 3-quantile head."""
    if isinstance(layer, torch.nn.Sequential):
        layers = list(layer)
        layers[-1] = logistic_rows(torch, layers[-1], positive, bad)
        return torch.nn.Sequential(*layers)
    return logistic_rows(torch, layer, positive, bad)


def head_model(backbone: Any, layer: Any, key: str) -> Any:
    """Backbone plus head as one module, each named as in the checkpoints (``model`` and the
    head under ``key``: ``score``, ``score_head``, ``v_head.summary``), so PEFT adapters
    trained on those names apply."""
    import torch

    class HeadModel(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = backbone
            self.place(layer)

        @property
        def head(self) -> Any:
            owner = self
            for part in key.split("."):
                owner = getattr(owner, part)
            return owner

        def place(self, value: Any) -> None:
            """Put ``value`` where the head is named (replacing it)."""
            owner = self
            *path, last = key.split(".")
            for part in path:
                if not hasattr(owner, part):
                    owner.add_module(part, torch.nn.Module())
                owner = getattr(owner, part)
            owner.add_module(last, value)

    return HeadModel()
