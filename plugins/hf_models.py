"""Loading transformers checkpoints, shared by the PRM scorer and the generator.

Nothing here imports torch or transformers at module level.
"""

from __future__ import annotations

import contextlib
import hashlib
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from prmh.errors import PrmhError

T = TypeVar("T")

DTYPES = ("auto", "bf16", "fp16", "fp32")


def resolve_checkpoint(
    model: str, revision: str | None, given_as: str = "-P model=PATH"
) -> tuple[Path, str]:
    """A local directory for ``model`` and a fingerprint of its weights.

    A directory is used as it is (fingerprint: weight files' names, sizes and modification
    times); anything else is a Hub id read from the local cache only (fingerprint: the
    snapshot's commit), since prmh never downloads during an evaluation. ``given_as`` is how
    the user names it, for the way out when it is neither (``-G model=PATH`` for a generator).
    """
    path = Path(model).expanduser()
    if path.is_dir():
        files = sorted(
            p for p in path.iterdir() if p.suffix in (".safetensors", ".bin", ".json", ".model")
        )
        stamp = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files]
        return path, hashlib.sha256(repr(stamp).encode()).hexdigest()[:16]
    if model.startswith((".", "/", "~")) or model.count("/") != 1:
        raise PrmhError(f"model directory {model!r} does not exist.")
    try:
        from huggingface_hub import snapshot_download

        local = Path(snapshot_download(model, revision=revision, local_files_only=True))
    except Exception as e:
        raise PrmhError(
            f"model {model!r} is neither a local directory nor in the local Hugging Face cache "
            f"({type(e).__name__}). Download it first (`huggingface-cli download {model}`) or "
            f"pass a local directory: {given_as}."
        ) from e
    return local, local.name


def loadable_checkpoint(model: str, revision: str | None, given_as: str) -> tuple[Path, str]:
    """``resolve_checkpoint`` for a model prmh loads, which holds the ``config.json``
    ``save_pretrained`` writes: without it transformers failed on the tokenizer, asking for
    sentencepiece or tiktoken."""
    path, fingerprint = resolve_checkpoint(model, revision, given_as)
    if not (path / "config.json").is_file():
        raise PrmhError(
            f"model {model!r} holds no config.json, so it is no transformers model: give the "
            f"folder save_pretrained wrote ({given_as})."
        )
    return path, fingerprint


@contextlib.contextmanager
def quiet_peft() -> Iterator[None]:
    """peft reads a model's ``is_gradient_checkpointing``, which transformers 5 deprecates with
    a FutureWarning (transformers ``modeling_utils.py``): a note for peft's authors, printed to
    every user who loads or trains an adapter. That one warning is dropped; others pass."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", "`is_gradient_checkpointing` is deprecated", FutureWarning
        )
        yield


def peft_model(model: Any, lora: Any) -> Any:
    """``model`` with new LoRA adapters (peft's ``get_peft_model``), quietly."""
    from peft import get_peft_model

    with quiet_peft():
        return get_peft_model(model, lora)


def with_adapter(model: Any, adapter: str, config: Any = None) -> Any:
    """``model`` with the PEFT adapter saved in ``adapter`` (``config``: its own, amended)."""
    from peft import PeftModel

    with quiet_peft():
        return PeftModel.from_pretrained(model, adapter, **({"config": config} if config else {}))


def resolved_dtype(device: str, dtype: str) -> str:
    """The dtype's name once ``auto`` is resolved: bf16 on a GPU, fp32 on a CPU (torch is
    imported only to learn where ``auto`` devices go)."""
    if dtype != "auto":
        return dtype
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    return "bf16" if device.split(":")[0] == "cuda" else "fp32"


def auto_precision(device: str, dtype: str) -> dict[str, str]:
    """What a dtype of ``auto`` adds to a component's identity: the precision it resolved to
    where that is not fp32, so bf16 results from a GPU never stand in for a CPU's fp32 ones
    under the same options (and CPU runs keep the keys they always had)."""
    chosen = resolved_dtype(device, dtype)
    return {"dtype": chosen} if dtype == "auto" and chosen != "fp32" else {}


def device_and_dtype(device: str, dtype: str) -> tuple[Any, Any]:
    """``auto`` picks CUDA when there is one; dtype ``auto`` is bf16 on GPU, fp32 on CPU."""
    import torch

    try:
        chosen = torch.device(
            ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        )
    except (RuntimeError, ValueError):
        raise PrmhError(
            f"device {device!r} is not a torch device: use auto, cpu, cuda or cuda:N."
        ) from None
    if chosen.type == "cuda" and (chosen.index or 0) >= torch.cuda.device_count():
        raise PrmhError(
            f"device {device!r}: this machine's torch sees {torch.cuda.device_count()} CUDA "
            "GPU(s); use device=cpu (or auto, which picks a GPU where there is one)."
        )
    named = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    name = resolved_dtype(chosen.type, dtype)
    if name not in named:
        raise PrmhError(f"dtype must be one of {', '.join(DTYPES)}, not {dtype!r}.")
    return chosen, named[name]


def batch_tokens(value: int | str, device: Any) -> int:
    """Padded tokens a PRM's forward pass reads: ``auto`` is 32,768 on a GPU (a 7B PRM in bf16
    on an H200 ran at 65% of the measured matmul peak there, 41% at 8,192: benchmarks/gpu.py)
    and 8,192 elsewhere (a CPU gains nothing from more); too many for the GPU halves it."""
    return auto_size("max_tokens_per_batch", value, device, gpu=32768, cpu=8192)


def batch_rows(value: int | str, device: Any) -> int:
    """Rows the hf generator decodes at once: ``auto`` is 128 on a GPU (a decoding step there
    is bound by launching its kernels, not by its rows: 78 ms for 64 rows of a 1.5B model on an
    H200, whose weights take ~1 ms to read) and 16 elsewhere; too many for the GPU halves it."""
    return auto_size("batch_size", value, device, gpu=128, cpu=16)


def auto_size(name: str, value: int | str, device: Any, *, gpu: int, cpu: int) -> int:
    """``value``, or for ``auto`` the size for ``device``: ``gpu`` on CUDA, else ``cpu``."""
    if value == "auto":
        return gpu if getattr(device, "type", None) == "cuda" else cpu
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PrmhError(f"{name} must be auto or at least 1, not {value!r}.")
    return value


def halved_on_oom(owner: Any, attribute: str, run: Callable[[], T], floor: int) -> T:
    """``run()``; where CUDA runs out of memory, ``run()`` again with ``owner.<attribute>`` (a
    batch's tokens or rows) halved, down to ``floor``, which it stays at for later calls. Each
    row is computed apart from the others, so the results are the same (to float rounding) at
    any batch size; the call's finished batches are computed again."""
    try:
        import torch
    except ImportError:  # a model served elsewhere (a client with a tokenizer only)
        return run()
    while True:
        try:
            return run()
        except torch.cuda.OutOfMemoryError:
            size = getattr(owner, attribute)
            if size <= floor:
                raise PrmhError(
                    f"out of GPU memory even at {attribute}={size}: use a smaller model or a "
                    "GPU with more memory free (a PRM can spread over GPUs: device_map=auto)."
                ) from None
        smaller = max(floor, size // 2)  # the failed call's tensors are freed by now
        warnings.warn(
            f"out of GPU memory at {attribute}={size}; going on at {smaller} (pass "
            f"{attribute}={smaller} to start there)",
            RuntimeWarning,
            stacklevel=3,
        )
        setattr(owner, attribute, smaller)
        torch.cuda.empty_cache()


def pretrained(cls: Any, path: Any, attention: str = "auto", **options: Any) -> Any:
    """``cls.from_pretrained(path, **options)`` with ``attention`` as transformers'
    ``attn_implementation`` (``auto``: its default, sdpa where torch has it; ``eager``,
    ``sdpa``, ``flash_attention_2`` where flash-attn is installed, ...): one that cannot run
    here is a clear error."""
    if attention == "auto":
        return cls.from_pretrained(path, **options)
    try:
        return cls.from_pretrained(path, attn_implementation=attention, **options)
    except (ImportError, ValueError) as e:
        reason = " ".join(str(e).split())[:300]
        raise PrmhError(
            f"attention={attention!r} cannot run here ({reason}); use attention=auto, sdpa or "
            "eager."
        ) from None


def quiet_transformers() -> None:
    """No load reports or progress bars from transformers: prmh reports what matters."""
    from huggingface_hub.utils import disable_progress_bars
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    disable_progress_bars()


def require_hf(what: str) -> None:
    """A clear error when the transformers back end is not installed. Every component
    imports torch through here, so the thread policy is applied first (``prmh.threads``)."""
    from prmh.threads import configure

    configure(before_torch=True)
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as e:
        raise PrmhError(
            f"{what}: needs the hf extra ({e.name} is missing): "
            "pip install torch==2.13.0 && pip install 'prmh[hf]'."
        ) from e


def forward_takes(model: Any, name: str) -> bool:
    """Whether ``model``'s forward (a peft model's base model's) names parameter ``name``."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return name in inspect.signature(base.forward).parameters


def cache_keyword(model: Any) -> str:
    """The keyword that hands a KV cache to ``model``'s forward: ``cache`` from transformers
    5.x (where ``past_key_values`` is deprecated, removed in 5.40), else ``past_key_values``."""
    return "cache" if forward_takes(model, "cache") else "past_key_values"


def cache_of(output: Any) -> Any:
    """The KV cache a forward returned (``cache``, or ``past_key_values`` before 5.x)."""
    cache = getattr(output, "cache", None)
    return cache if cache is not None else getattr(output, "past_key_values", None)


def attends_everywhere(config: Any) -> bool:
    """Whether every layer of a model attends to all earlier positions (no sliding window,
    linear attention or state space layers), so that one plain KV cache serves it."""
    types = getattr(config, "layer_types", None)
    if types is not None:
        return all(t == "full_attention" for t in types)
    return not getattr(config, "sliding_window", None) or not getattr(
        config, "use_sliding_window", True
    )
