"""Tiny local models for tests, benchmarks and plugin authors: no download, built in a second.

``tiny_tokenizer`` trains a byte-level BPE tokenizer with Qwen2's own pre-tokenizer (so ids
survive a save and ``AutoTokenizer`` reload), with a ChatML chat template and any extra tokens
a recipe needs. ``tiny_qwen2`` builds a small Qwen2 causal LM on it. ``save_tiny_prm`` writes a
directory in the layout each PRM recipe loads. torch and transformers are imported only here,
inside the functions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")

DEFAULT_CORPUS = (
    "Ava has 12 apples. She gets 7 more apples. How many apples does Ava have now?",
    "Getting 7 more gives 12 + 7 = 19 apples.",
    "Giving away 5 gives 19 - 5 = 14 apples.",
    "Multiplying by 3 gives 14 * 3 = 42 apples.",
    "Splitting into 2 groups gives 42 / 2 = 21 apples.",
    "The answer is 21.",
    "Step 1: add the numbers. Step 2: check the result.",
    "Please reason step by step, and put your final answer within \\boxed{}.",
    "system user assistant + - ки ş [PRM]",
)


@contextlib.contextmanager
def inline_plugin(plugin: Any, name: str = "inline") -> Iterator[None]:
    """Register ``plugin`` (a module, class or object with ``@hookimpl`` functions) for the
    duration of a ``with`` block, as if it were installed: every registry built inside it,
    the CLI's included, sees its components. No packaging needed:

        class MySearch: ...

        class Plugin:
            @hookimpl
            def prmh_register_search(self, register):
                register("mine", MySearch)

        with inline_plugin(Plugin()):
            result = prmh.evaluate(world="sim", search=["mine"], limit=5)
    """
    from prmh.manager import INLINE

    token = INLINE.set((*INLINE.get(), (name, plugin)))
    try:
        yield
    finally:
        INLINE.reset(token)


def tiny_tokenizer(
    extra_tokens: Sequence[str] = (),
    special_tokens: Sequence[str] = (),
    corpus: Iterable[str] = DEFAULT_CORPUS,
    vocab_size: int = 400,
) -> Any:
    """A small fast tokenizer; ``extra_tokens`` become single (non-special) tokens."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    core = Tokenizer(models.BPE())
    core.normalizer = normalizers.NFC()
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[*SPECIAL_TOKENS, *special_tokens],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(list(corpus) * 4, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        additional_special_tokens=list(special_tokens) or None,
    )
    if extra_tokens:
        tokenizer.add_tokens(list(extra_tokens))
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def tiny_qwen2(
    tokenizer: Any, *, hidden: int = 32, layers: int = 2, seed: int = 0, model_type: str = "qwen2"
) -> Any:
    """A randomly initialised causal LM sized to the tokenizer (fp32, eval mode): Qwen2 by
    default, or another decoder ``model_type`` of the same shape (``mistral``, ``llama``) so a
    checkpoint reloads with that family's tokenizer class."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(seed)
    config = AutoConfig.for_model(
        model_type,
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return AutoModelForCausalLM.from_config(config).eval()


def save_tiny_prm(
    directory: str | Path,
    head: str,
    tokenizer: Any,
    *,
    layers: int = 2,
    hidden: int = 32,
    seed: int = 0,
    plant: dict[str, Any] | None = None,
    model_type: str = "qwen2",
    classes: int = 2,
    head_key: str = "score",
) -> Path:
    """Save a tiny PRM in the layout a recipe's ``head`` reads.

    - ``lm``: a causal LM checkpoint (Math-Shepherd, RLHFlow, ASPRM, generic token reads);
    - ``classifier``: Qwen2.5-Math-PRM's layout, backbone ``model.*`` plus ``score.0``/``score.2``
      (Linear, ReLU, Linear(2)) in the same safetensors file, no remote code;
    - ``value``: a causal LM plus ``v_head.summary.{weight,bias}`` (TRL's value-head layout);
    - ``linear``: one Linear layer of ``classes`` outputs named ``head_key`` (ReasonEval's
      ``score_head``; token classification checkpoints are saved by transformers itself).

    ``plant`` maps parameter names to tensors set before saving; ``model_type`` picks the
    backbone family (see ``tiny_qwen2``).
    """
    from safetensors.torch import save_file

    directory = Path(directory)
    model = tiny_qwen2(tokenizer, hidden=hidden, layers=layers, seed=seed, model_type=model_type)
    hidden = model.config.hidden_size
    if head == "classifier":
        model.config.architectures = ["Qwen2ForProcessRewardModel"]
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    state.update(_head_tensors(head, hidden, seed, classes, head_key))
    for name, value in (plant or {}).items():
        if name not in state:
            raise KeyError(f"no parameter {name!r} to plant")
        state[name] = value.detach().clone().to(state[name].dtype).reshape(state[name].shape)
    directory.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(directory)
    save_file(state, directory / "model.safetensors", metadata={"format": "pt"})
    tokenizer.save_pretrained(directory)
    return directory


def _head_tensors(head: str, hidden: int, seed: int, classes: int, key: str) -> dict[str, Any]:
    import torch

    generator = torch.Generator().manual_seed(seed + 1)

    def weight(rows: int) -> Any:
        return torch.randn(rows, hidden, generator=generator) / hidden**0.5

    if head == "classifier":
        return {
            "score.0.weight": weight(hidden),
            "score.0.bias": torch.zeros(hidden),
            "score.2.weight": weight(2),
            "score.2.bias": torch.zeros(2),
        }
    if head == "value":
        return {"v_head.summary.weight": weight(1), "v_head.summary.bias": torch.zeros(1)}
    if head == "linear":
        bias = torch.randn(classes, generator=generator) / 10
        return {f"{key}.weight": weight(classes), f"{key}.bias": bias}
    if head != "lm":
        raise ValueError(f"unknown head {head!r}; heads are lm, classifier, value, linear")
    return {}
