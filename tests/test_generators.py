"""Generators: hf on a tiny local model, vllm request building and parsing without vLLM, and
openai against small local HTTP servers started here (loopback only)."""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from standin import JSONHandler, serving

from prmh import Problem, SampleRequest
from prmh.errors import PrmhError
from prmh.plugins.generators.common import Sampling, sample_seed
from prmh.plugins.generators.openai import OpenAIGenerator, build_payload, parse_completion
from prmh.plugins.generators.vllm import build_requests, parse_output

PROBLEM = Problem("p1", "What is 2 + 3?", "5")


def request(n=2, seed=0, first_index=0, prefix="", stop=()):
    return SampleRequest(PROBLEM, "Q: What is 2 + 3?\nA:", n, seed, first_index, prefix, stop)


# ---------------------------------------------------------------- hf


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    pytest.importorskip("torch")
    from prmh.testing import save_tiny_prm, tiny_tokenizer

    return str(save_tiny_prm(tmp_path_factory.mktemp("gen") / "lm", "lm", tiny_tokenizer()))


def tiny_prm(model: str) -> list[str]:
    """`prmh eval` options for a Math-Shepherd-style PRM on the tiny model (tag "apples")."""
    return [
        "--prm",
        "math-shepherd",
        "-P",
        f"model={model}",
        "-P",
        'step_tag="apples"',
        "-P",
        "good_token_id=5",
        "-P",
        "bad_token_id=6",
    ]


@pytest.fixture(scope="module")
def hf(tiny_lm, registry_module):
    return registry_module.create(
        "generator", "hf", {"model": tiny_lm, "max_new_tokens": 24, "temperature": 1.0}
    ).instance


@pytest.fixture(scope="module")
def registry_module():
    from prmh.registry import load_registry

    return load_registry()


def test_hf_samples_are_reproducible_and_independent_of_their_batch(hf):
    whole = hf.sample([request(n=4)])[0]
    again = hf.sample([request(n=4)])[0]
    assert [g.text for g in whole] == [g.text for g in again]
    assert len({g.text for g in whole}) > 1  # sampling, not copies
    grown = hf.sample(
        [
            SampleRequest(Problem("o", "other", "1"), "other prompt", 3, 9),
            request(n=2, first_index=2),
        ]
    )[1]
    assert [g.text for g in grown] == [g.text for g in whole[2:]]
    assert hf.sample([request(n=1, seed=1)])[0][0].text != whole[0].text


def test_hf_generation_carries_tokens_and_logprobs(hf):
    for g in hf.sample([request(n=3)])[0]:
        assert "".join(g.tokens) == g.text
        assert len(g.token_logprobs) == len(g.tokens)
        assert all(lp <= 0 for lp in g.token_logprobs)
        assert g.num_tokens >= len(g.tokens)
        assert g.finished or g.num_tokens == 24


def test_hf_stops_at_a_step_boundary_and_continues_a_prefix(hf):
    plain = hf.sample([request(n=3)])[0]
    stopped = hf.sample([request(n=3, stop=(" ",))])[0]
    for full, cut in zip(plain, stopped, strict=True):
        if " " in full.text:
            assert cut.text == full.text[: full.text.index(" ")] and cut.stop == " "
            assert not cut.finished
    continued = hf.sample([request(n=1, prefix=" 2 + 3")])[0][0]
    assert continued.text  # continues after the prefix, which is not repeated
    assert (
        hf.contexts([request(prefix=" 2 + 3")])[0][-3:]
        == hf.tokenizer.encode("Q: What is 2 + 3?\nA: 2 + 3")[-3:]
    )


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_hf_continues_a_stopped_sample_from_its_kept_kv_cache(
    tiny_lm, registry_module, temperature, device
):
    """The next round of a step-level search: continuations of samples that stopped at a
    step's end read only the new tokens (the kept KV covers the rest), and give the samples a
    generator without the cache gives (same texts, log-probabilities to 1e-4), rows with and
    without a kept prefix in one batch."""
    options = {"model": tiny_lm, "max_new_tokens": 24, "temperature": temperature}
    options["device"] = device
    kept = registry_module.create("generator", "hf", options).instance
    plain = registry_module.create(
        "generator", "hf", {**options, "prefix_cache_tokens": 0}
    ).instance
    fed = {"kept": [], "plain": []}  # context and new tokens each forward pass reads

    def counting(log):
        def hook(module, args, kwargs):
            width = kwargs["input_ids"].shape[1]
            log.append(int(kwargs["attention_mask"][:, -width:].sum()))

        return hook

    for g, name in ((kept, "kept"), (plain, "plain")):
        g.model.register_forward_pre_hook(counting(fed[name]), with_kwargs=True)
    first = [request(n=3, stop=(" ",)), request(n=2, seed=5, stop=(" ",))]
    rounds = [(g, g.sample(first)) for g in (kept, plain)]
    (_, a), (_, b) = rounds
    assert [[x.text for x in row] for row in a] == [[x.text for x in row] for row in b]
    nexts = [request(n=2, prefix=x.text + " ", stop=(" ",)) for x in a[0] if x.stop == " "]
    nexts.append(request(n=2, seed=9, stop=(" ",)))  # nothing kept for this one
    fed["kept"].clear(), fed["plain"].clear()
    again, alone = kept.sample(nexts), plain.sample(nexts)
    for x_row, y_row in zip(again, alone, strict=True):
        for x, y in zip(x_row, y_row, strict=True):
            assert x.text == y.text and x.stop == y.stop
            assert x.token_logprobs == pytest.approx(y.token_logprobs, abs=1e-4)
    assert len(nexts) > 1 and sum(fed["kept"]) < sum(fed["plain"])


@pytest.mark.parametrize("device", DEVICES)
def test_hf_rows_of_one_context_share_its_first_pass_and_decode_as_transformers_does(
    tiny_lm, registry_module, device
):
    """The samples of one prompt read it once (its KV cache and logits copied to each row) and
    decode into a cache that grows in place; each sample still equals decoding it alone with
    the model's own cache (transformers' ``DynamicCache``) and ``torch.multinomial`` from its
    own generator, as ``GenerationMixin._sample`` draws (transformers 5.24.0,
    src/transformers/generation/utils.py): same tokens, log-probabilities to 1e-4. On a GPU,
    with generators there as ``generate()`` would have them: the same tokens, log-probabilities
    to 5e-4 of their size (on an H200 with torch 2.11 a padded batch and a lone row differed
    by up to 1.2e-4 of it, 7e-4 at -6.09: GPU kernels differ by shape; 1e-4 holds on CPUs)."""
    import torch
    from transformers import AutoModelForCausalLM

    from prmh.plugins.hf_models import cache_keyword, cache_of

    options = {"model": tiny_lm, "max_new_tokens": 12, "temperature": 1.0, "device": device}
    hf = registry_module.create("generator", "hf", options).instance
    rows = []
    hf.model.register_forward_pre_hook(
        lambda m, a, kw: rows.append(tuple(kw["input_ids"].shape)), with_kwargs=True
    )
    other = SampleRequest(Problem("o", "other", "1"), "Q: What is 10 + 30 + 2?\nA:", 3, 4)
    asked = [request(n=3), other]
    got = hf.sample(asked)
    assert rows[0][0] == 2  # two contexts read for six rows
    model = AutoModelForCausalLM.from_pretrained(tiny_lm).to(device).eval()
    close = {"abs": 1e-4} if device == "cpu" else {"rel": 5e-4}
    for ask, samples in zip(asked, got, strict=True):
        for i, sample in enumerate(samples):
            draw = torch.Generator(device).manual_seed(sample_seed(ask, i))
            ids = torch.tensor(hf.contexts([ask]), device=device)
            cache, tokens, logprobs = None, [], []
            with torch.no_grad():
                for _ in range(12):
                    out = model(input_ids=ids, use_cache=True, **{cache_keyword(model): cache})
                    cache, logp = cache_of(out), torch.log_softmax(out.logits[0, -1], -1)
                    token = int(torch.multinomial(logp.exp(), 1, generator=draw))
                    tokens.append(token), logprobs.append(float(logp[token]))
                    if token in hf.eos:
                        break
                    ids = torch.tensor([[token]], device=device)
            assert sample.num_tokens == len(tokens)
            assert sample.text == hf.tokenizer.decode([t for t in tokens if t not in hf.eos])
            expected = logprobs[: len(sample.tokens)]
            assert sample.token_logprobs == pytest.approx(expected, **close)


def test_hf_running_out_of_gpu_memory_halves_the_batch_and_goes_on(tiny_lm, registry_module):
    """More rows than the (simulated) GPU holds raise CUDA's out-of-memory error: the generator
    warns, halves ``batch_size`` until a batch fits, keeps it there, and gives the samples it
    gives at that size from the start (each row draws from its own generator)."""
    import torch

    options = {"model": tiny_lm, "max_new_tokens": 10, "temperature": 1.0}
    small = registry_module.create("generator", "hf", {**options, "batch_size": 2}).instance
    hf = registry_module.create("generator", "hf", {**options, "batch_size": 8}).instance

    def small_gpu(module, args, kwargs):
        if kwargs["input_ids"].shape[0] > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    hf.model.register_forward_pre_hook(small_gpu, with_kwargs=True)
    asked = [request(n=3), request(n=4, seed=7)]
    with pytest.warns(RuntimeWarning) as caught:
        got = hf.sample(asked)
    assert [str(w.message).split(" (")[0] for w in caught] == [
        "out of GPU memory at batch_size=8; going on at 4",
        "out of GPU memory at batch_size=4; going on at 2",
    ]
    assert hf.batch_size == 2
    expected = small.sample(asked)
    assert [[g.text for g in row] for row in got] == [[g.text for g in row] for row in expected]


def test_hf_batch_size_of_auto_is_larger_on_a_gpu(tiny_lm, registry_module):
    """batch_size=auto: 128 rows at once on CUDA (a GPU's decoding step costs about the same
    for one row as for dozens), 16 elsewhere; a size below 1 is a clear error."""
    import torch

    from prmh.plugins.hf_models import batch_rows

    assert batch_rows("auto", torch.device("cuda")) == 128
    assert batch_rows("auto", torch.device("cpu")) == 16
    hf = registry_module.create("generator", "hf", {"model": tiny_lm}).instance
    assert hf.batch_size == 16
    with pytest.raises(PrmhError, match="batch_size must be auto or at least 1, not 0"):
        registry_module.create("generator", "hf", {"model": tiny_lm, "batch_size": 0})


def test_hf_attention_is_an_option_that_keeps_the_samples(tiny_lm, registry_module):
    """-G attention=eager (transformers' attn_implementation) decodes the samples the default
    (sdpa) does, under the same cache keys."""
    options = {"model": tiny_lm, "max_new_tokens": 12, "temperature": 1.0}
    plain = registry_module.create("generator", "hf", options)
    eager = registry_module.create("generator", "hf", {**options, "attention": "eager"})
    assert eager.instance.model.config._attn_implementation == "eager"
    assert eager.identity == plain.identity
    asked = [request(n=3), request(n=2, seed=4, stop=(" ",))]
    for x_row, y_row in zip(
        eager.instance.sample(asked), plain.instance.sample(asked), strict=True
    ):
        for x, y in zip(x_row, y_row, strict=True):
            assert x.text == y.text
            assert x.token_logprobs == pytest.approx(y.token_logprobs, abs=1e-4)


def test_hf_greedy_follows_the_model_argmax(tiny_lm, registry_module):
    import torch
    from transformers import AutoModelForCausalLM

    greedy = registry_module.create(
        "generator", "hf", {"model": tiny_lm, "max_new_tokens": 5, "temperature": 0}
    ).instance
    g = greedy.sample([request(n=2)])[0]
    assert g[0].text == g[1].text  # no randomness at temperature 0
    model = AutoModelForCausalLM.from_pretrained(tiny_lm)
    ids = greedy.contexts([request()])[0]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
    first = int(logits.argmax())
    assert g[0].token_logprobs[0] == pytest.approx(
        float(torch.log_softmax(logits, -1)[first]), abs=1e-4
    )
    assert g[0].tokens[0] == greedy.tokenizer.decode([first])


@pytest.mark.parametrize("device", ["cpu", "cuda"])
@pytest.mark.parametrize(("top_p", "vocabulary"), [(1.0, 40), (0.8, 40), (1.0, 9000)])
def test_hf_batched_sampling_draws_what_multinomial_draws_row_by_row(
    tiny_lm, registry_module, top_p, vocabulary, device, monkeypatch
):
    """All rows sampled at once give each row's ``torch.multinomial`` draw from its own
    generator (the per-row sampling prmh did before, and ``generate()``'s sampling step), the
    greedy rows their argmax, and each token's log-probability after temperature; on the
    model's device, with generators there (on a GPU, sampling on the CPU would take longer
    than the decoding step); on the CPU at a large vocabulary, with rows drawn on two threads."""
    import torch

    from prmh.plugins.generators.sampling import PARALLEL_DRAWS

    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU (benchmarks/gpu.py samples there on a lent machine)")
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    hf = registry_module.create("generator", "hf", {"model": tiny_lm, "top_p": top_p}).instance
    logits = torch.randn(6, vocabulary, generator=torch.Generator().manual_seed(3)) * 4
    temperatures = [0.7, 0.0, 1.3, 0.7, 0.0, 0.2]
    for draw in range(20 if vocabulary < PARALLEL_DRAWS else 5):
        seeds = [1000 * draw + row for row in range(6)]
        with torch.inference_mode():  # as decoding calls it
            tokens, logprobs, _ = hf.sampler.pick(
                logits.to(device), [torch.Generator(device).manual_seed(s) for s in seeds],
                temperatures,
            )  # fmt: skip
        for row, (t, seed) in enumerate(zip(temperatures, seeds, strict=True)):
            logp = torch.log_softmax(logits[row] / (t or 1.0), -1)
            if t == 0:
                expected = int(logits[row].argmax())
            else:
                probs = logp.exp()
                if top_p < 1:
                    ordered, order = probs.sort(descending=True)
                    keep = ordered.cumsum(0) - ordered < top_p
                    probs = torch.zeros_like(probs).scatter(0, order[keep], ordered[keep])
                generator = torch.Generator(device).manual_seed(seed)
                expected = int(torch.multinomial(probs.to(device), 1, generator=generator))
            assert tokens[row] == expected
            assert logprobs[row] == pytest.approx(float(logp[expected]), abs=1e-6)
    threaded = device == "cpu" and vocabulary >= PARALLEL_DRAWS
    assert (hf.sampler.pool is not None) == threaded


def test_exponential_draws_are_torchs_bit_for_bit(monkeypatch):
    """The CPU sampler's Exp(1) numbers from float64 uniforms equal ``Tensor.exponential_``'s
    from the same generator (torch's CPU kernel: ``-1/lambda * log1p(-u)`` of a float64
    uniform, cast to float32; pytorch/pytorch aten/src/ATen/core/TransformationHelper.h,
    ``exponential``, commit 171c2a1e5a72), bit for bit over a million draws; a result next to
    a float32 rounding boundary is the C library's ``log1p`` rounded, whatever the vectorised
    one gives."""
    import math

    from prmh.plugins.generators import sampling

    torch = pytest.importorskip("torch")

    for seed in range(8):
        expected = torch.empty(4, 40_000)
        generator = torch.Generator().manual_seed(seed)
        for row in expected:
            row.exponential_(1, generator=generator)
        uniform = torch.empty(4, 40_000, dtype=torch.float64)
        generator = torch.Generator().manual_seed(seed)
        for row in uniform:
            row.uniform_(generator=generator)
        assert torch.equal(sampling.exponential_from(torch, uniform), expected)
    # uniforms whose draws fall on float32 midpoints: each is computed with math.log1p
    below = torch.tensor([0.01, 0.1, 0.5, 1.0, 1.25, 2.0], dtype=torch.float32)
    above = torch.nextafter(below, torch.tensor(math.inf))
    uniform = (-torch.expm1(-(below.double() + above.double()) / 2))[None]
    asked, log1p, near = [], math.log1p, [-u for u in uniform[0].tolist()]
    monkeypatch.setattr(sampling.math, "log1p", lambda x: asked.append(x) or log1p(x))
    got = sampling.exponential_from(torch, uniform)[0].tolist()
    monkeypatch.undo()
    assert asked == near
    assert got == [float(torch.tensor(-math.log1p(x), dtype=torch.float64).float()) for x in asked]


def test_the_sampler_draws_a_large_vocabulary_in_chunks_as_exponential_would(monkeypatch):
    """Rows of a 150k vocabulary are drawn a few at a time on two threads: each drawn row holds
    ``exponential_``'s numbers from its own generator, each greedy row is left as it was."""
    torch = pytest.importorskip("torch")
    from prmh.plugins.generators.sampling import RowSampler

    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    cold = [row in (3, 10) for row in range(14)]
    noise, expected = torch.ones(14, 150_000), torch.ones(14, 150_000)
    with torch.inference_mode():
        RowSampler(torch, 1.0).draw(
            noise, [torch.Generator().manual_seed(row) for row in range(14)], cold
        )
    for row, skip in enumerate(cold):
        if not skip:
            expected[row].exponential_(1, generator=torch.Generator().manual_seed(row))
    assert torch.equal(noise, expected)


def test_hf_contexts_are_encoded_in_one_call_as_each_alone(tiny_lm, registry_module):
    """A round's contexts in one tokenizer call: the ids of each encoded alone, and for a chat
    model the ids of transformers' own ``apply_chat_template(..., tokenize=True)`` (the usage
    model cards give; transformers 5.24.0, src/transformers/tokenization_utils_base.py), on the
    tiny world's Qwen BPE tokenizer and the test tokenizer."""
    from prmh.plugins.tiny import WORLD

    asks = [request(prefix=p) for p in ("", "2 + 3 = 5.", " 5\n\nSo ", "ünïcode ✓ 12,345")]
    messages = [{"role": "user", "content": asks[0].prompt}]  # every ask's prompt
    for options in ({"model": tiny_lm}, {"model": str(WORLD / "generator"), "chat_template": True}):
        generator = registry_module.create("generator", "hf", options).instance
        tokenizer, chat = generator.tokenizer, options.get("chat_template", False)
        template = tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        expected = [
            tokenizer.encode(
                (template if chat else a.prompt) + a.prefix, add_special_tokens=not chat
            )
            for a in asks
        ]
        assert generator.contexts(asks) == expected
        if chat:
            alone = tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, return_dict=False
            )
            assert generator.contexts(asks[:1]) == [list(alone)]
        assert generator.contexts([]) == []


def test_hf_chat_template_and_bad_options(tiny_lm, registry_module):
    chat = registry_module.create(
        "generator", "hf", {"model": tiny_lm, "chat_template": True, "system_prompt": "Be brief."}
    ).instance
    text = chat.tokenizer.decode(chat.contexts([request()])[0])
    assert text.startswith("<|im_start|>system\nBe brief.") and text.endswith("assistant\n")
    with pytest.raises(PrmhError, match="top_p must be in"):
        registry_module.create("generator", "hf", {"model": tiny_lm, "top_p": 0})
    with pytest.raises(PrmhError, match="neither a local directory nor in the local") as not_here:
        registry_module.create("generator", "hf", {"model": "someone/not-cached"})
    assert str(not_here.value).endswith("pass a local directory: -G model=PATH.")  # not -P
    empty = Path(tiny_lm).parent / "empty"  # transformers asked for sentencepiece or tiktoken
    empty.mkdir(exist_ok=True)
    with pytest.raises(PrmhError, match=r"holds no config\.json, so it is no transformers model"):
        registry_module.create("generator", "hf", {"model": str(empty)})
    # a batch's attention mask is laid out for every new token: 10**9 of them asked the
    # allocator for 64 GB, a RuntimeError traceback once the first batch ran
    from transformers import AutoConfig

    positions = AutoConfig.from_pretrained(tiny_lm).max_position_embeddings
    with pytest.raises(PrmhError, match=f"has positions for \\({positions}\\): use at most"):
        registry_module.create("generator", "hf", {"model": tiny_lm, "max_new_tokens": 10**9})


# ---------------------------------------------------------------- vllm (no vLLM needed)


def test_vllm_requests_one_per_sample_with_its_own_seed():
    sampling = Sampling(temperature=0.8, top_p=0.9, max_new_tokens=64, stop=("</s>",))
    built = build_requests(
        [request(n=2, prefix="Step 1: 5.", stop=("\n\n",))], sampling, lambda r: f"<chat>{r.prompt}"
    )
    assert len(built) == 2
    prompt, params = built[1]
    assert prompt == "<chat>Q: What is 2 + 3?\nA:Step 1: 5."
    assert params == {
        "n": 1,
        "temperature": 0.8,
        "top_p": 0.9,
        "max_tokens": 64,
        "seed": sample_seed(request(n=2, prefix="Step 1: 5.", stop=("\n\n",)), 1) % 2**63,
        "stop": ["\n\n", "</s>"],
        "logprobs": 0,
    }
    assert built[0][1]["seed"] != params["seed"]


def _vllm_output(text, ids, pieces, finish, stop_reason):
    logprobs = [
        {i: SimpleNamespace(logprob=-0.1 * (k + 1), decoded_token=p)}
        for k, (i, p) in enumerate(zip(ids, pieces, strict=True))
    ]
    completion = SimpleNamespace(
        text=text, token_ids=ids, logprobs=logprobs, finish_reason=finish, stop_reason=stop_reason
    )
    return SimpleNamespace(outputs=[completion])


def test_vllm_output_parsing():
    sampling = Sampling(stop=("</s>",))
    step = parse_output(
        _vllm_output("2 + 3 = 5", [1, 2, 3], ["2", " + 3", " = 5"], "stop", "\n\n"),
        request(stop=("\n\n",)),
        sampling,
        0.5,
    )
    assert (step.text, step.finished, step.stop, step.num_tokens) == ("2 + 3 = 5", False, "\n\n", 3)
    assert step.tokens == ("2", " + 3", " = 5")
    assert step.token_logprobs == pytest.approx((-0.1, -0.2, -0.3))
    eos = parse_output(_vllm_output("5", [7], ["5"], "stop", None), request(), sampling, 0.1)
    assert eos.finished and eos.stop is None
    marker = parse_output(_vllm_output("5", [7], ["5"], "stop", "</s>"), request(), sampling, 0.1)
    assert marker.finished
    length = parse_output(
        _vllm_output("5 5", [7, 7], ["5", " 5"], "length", None), request(), sampling, 0.1
    )
    assert not length.finished


def test_vllm_without_vllm_is_a_clear_error(registry_module):
    pytest.importorskip("torch")
    try:
        import vllm  # noqa: F401

        pytest.skip("vLLM is installed here")
    except ImportError:
        pass
    with pytest.raises(PrmhError, match=r"needs vLLM and a GPU: pip install 'prmh\[vllm\]'"):
        registry_module.create("generator", "vllm", {"model": "x"})


@pytest.mark.gpu
def test_vllm_end_to_end_on_gpu(tiny_lm, registry_module):
    """Runs only where CUDA and vLLM are available."""
    pytest.importorskip("vllm")
    g = registry_module.create(
        "generator", "vllm", {"model": tiny_lm, "max_new_tokens": 8}
    ).instance
    out = g.sample([request(n=2, stop=(" ",))])[0]
    assert len(out) == 2 and all(x.num_tokens <= 8 for x in out)


# ---------------------------------------------------------------- openai (local servers)


TOTAL = SimpleNamespace(lock=threading.Lock(), in_flight=0, peak=0)


class StandIn(JSONHandler):
    """A deterministic /v1/completions server: the completion depends on prompt and seed."""

    def do_POST(self):
        server = self.server
        body = self.body()
        with server.lock:
            server.seen.append(body)
            fail = server.failures > 0
            server.failures -= fail
        with TOTAL.lock:  # in flight across every server of the test
            TOTAL.in_flight += 1
            TOTAL.peak = max(TOTAL.peak, TOTAL.in_flight)
        try:
            time.sleep(server.delay)
        finally:  # done before the reply: once it is sent, the client may send the next
            with TOTAL.lock:
                TOTAL.in_flight -= 1
        if fail:
            self.reply(500, {"error": "overloaded"})
        elif body.get("model") != "tiny":
            self.reply(404, {"error": f"model {body.get('model')} not found"})
        else:
            self.reply(200, self._complete(body))

    def _complete(self, body):
        text = f"Step {body['seed'] % 97}: {len(body['prompt'])}\n\nThe answer is 5."
        finish, stop_reason = "stop", None
        for stop in body.get("stop", []):
            if stop in text:
                text, stop_reason = text[: text.index(stop)], stop
        pieces = [p for p in text.replace(" ", "\x00 ").split("\x00") if p]
        return {
            "choices": [
                {
                    "text": text,
                    "finish_reason": finish,
                    "stop_reason": stop_reason,
                    "logprobs": {"tokens": pieces, "token_logprobs": [-0.5] * len(pieces)},
                }
            ],
            "usage": {"completion_tokens": len(pieces)},
        }


@pytest.fixture
def servers():
    TOTAL.in_flight = TOTAL.peak = 0
    with contextlib.ExitStack() as stack:

        def start(failures=0, delay=0.0):
            return stack.enter_context(serving(StandIn, seen=[], failures=failures, delay=delay))

        yield start


def test_openai_payload_and_parsing():
    sampling = Sampling(temperature=0.5, max_new_tokens=32)
    payload = build_payload("m", request(prefix=" 2", stop=("\n\n",)), 3, sampling, True)
    assert payload["prompt"].endswith("A: 2") and payload["stop"] == ["\n\n"]
    assert payload["n"] == 1 and payload["logprobs"] == 1 and payload["max_tokens"] == 32
    body = {"choices": [{"text": "Step 1\n\n", "finish_reason": "stop", "stop_reason": None}]}
    kept_stop = parse_completion(body, request(stop=("\n\n",)), sampling, 0.1)
    assert kept_stop.text == "Step 1" and kept_stop.stop == "\n\n" and not kept_stop.finished
    with pytest.raises(PrmhError, match="no choices"):
        parse_completion({"error": "x"}, request(), sampling, 0.1)


def test_openai_balances_retries_and_limits_concurrency(servers):
    flaky, url_a = servers(failures=2, delay=0.02)
    steady, url_b = servers(delay=0.02)
    generator = OpenAIGenerator("tiny", base_url=f"{url_a},{url_b}", concurrency=3, backoff=0.0)
    out = generator.sample([request(n=8, stop=("\n\n",)), request(n=4, seed=5)])
    assert [len(row) for row in out] == [8, 4]
    assert all(g.stop == "\n\n" and not g.finished for g in out[0])
    assert all(g.finished and g.text.endswith("The answer is 5.") for g in out[1])
    assert all(
        "".join(g.tokens) == g.text and len(g.token_logprobs) == len(g.tokens)
        for row in out
        for g in row
    )
    # 12 samples + 2 retried failures, spread over both servers, never more than 3 at once.
    assert len(flaky.seen) + len(steady.seen) == 14
    assert len(flaky.seen) >= 3 and len(steady.seen) >= 3
    assert TOTAL.peak == 3
    again = OpenAIGenerator("tiny", base_url=url_b).sample([request(n=8, stop=("\n\n",))])
    assert [g.text for g in again[0]] == [g.text for g in out[0]]  # seeds, not order


def test_openai_errors_are_clear(servers):
    _, url = servers()
    with pytest.raises(PrmhError, match=r"refused the request \(HTTP 404\).*model other not found"):
        OpenAIGenerator("other", base_url=url).sample([request(n=1)])
    dead = "http://127.0.0.1:9/v1"
    started = time.monotonic()
    with pytest.raises(PrmhError, match="no answer after 3 attempts"):
        OpenAIGenerator("tiny", base_url=dead, retries=2, backoff=0.0, timeout=2).sample(
            [request(n=1)]
        )
    assert time.monotonic() - started < 10
    with pytest.raises(PrmhError, match="base_url must be http"):
        OpenAIGenerator("tiny", base_url="localhost:8000")


def test_openai_end_to_end_from_the_cli(cli, servers, tiny_lm, tmp_path):
    server, url = servers()
    data = tmp_path / "gsm.jsonl"
    data.write_text(
        json.dumps({"question": "2 + 3?", "answer": "2 + 3 = 5\n#### 5"})
        + "\n"
        + json.dumps({"question": "1 + 1?", "answer": "#### 2"})
        + "\n"
    )
    source = [
        "eval",
        "--json",
        "--task",
        "gsm8k",
        "--data",
        str(data),
        "--generator",
        "openai",
        "-G",
        "model=tiny",
        "-G",
        f"base_url={json.dumps(url)}",
        "-G",
        "api_key=sk-secret",
    ]
    args = [*source, *tiny_prm(tiny_lm), "-n", "1", "-n", "4"]
    result = cli(*args)
    assert result.exit_code == 0, result.output
    table = json.loads(result.output)["metrics"]["tables"][0]
    # Every stand-in completion ends "The answer is 5.": right for the first problem only.
    assert {c["mean"] for c in table["rows"][0]["cells"]} == {0.5}
    assert len(server.seen) == 8
    import gzip

    runs = sorted((cli.results_dir / "runs").glob("*"))
    assert any(p.suffix == ".gz" for p in runs)  # the per-sample results, checked too
    texts = [gzip.decompress(p.read_bytes()).decode() if p.suffix == ".gz" else p.read_text()
             for p in runs]  # fmt: skip
    assert "sk-secret" not in "".join(texts)
    assert cli(*args).exit_code == 0 and len(server.seen) == 8  # the same request is never re-sent
    oracle = cli(*source, "--prm", "oracle", "-n", "1")
    assert oracle.exit_code == 2 and "oracle PRM needs gold steps" in oracle.output


def test_hf_generator_on_gsm8k_from_a_local_file(cli, tiny_lm, tmp_path):
    """`--task gsm8k --data local.jsonl --generator hf -G model=<tiny>` end to end."""
    data = tmp_path / "local.jsonl"
    rows = [
        {"question": f"What is {a} + {b}?", "answer": f"{a} + {b} = {a + b}\n#### {a + b}"}
        for a, b in [(1, 2), (3, 4), (5, 6)]
    ]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    args = [
        "eval",
        "--json",
        "--task",
        "gsm8k",
        "--data",
        str(data),
        "--generator",
        "hf",
        "-G",
        f"model={tiny_lm}",
        "-G",
        "max_new_tokens=12",
        *tiny_prm(tiny_lm),
        "-n",
        "1",
        "-n",
        "2",
        "--agg",
        "last",
    ]
    result = cli(*args)
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    (table,) = record["metrics"]["tables"]
    assert table["problems"] == 3 and table["grader"]["name"] == "numeric"
    assert record["metrics"]["cache"]["computed"]["generation"] == 6
    assert json.loads(cli(*args).output)["metrics"]["cache"]["computed"]["generation"] == 0
    assert math.isfinite(table["rows"][-1]["cells"][0]["mean"])


def test_step_searches_on_tiny_local_models(cli, tiny_lm, tmp_path):
    """Beam, DVTS and beam-IAS with the hf generator and a transformers PRM, end to end."""
    data = tmp_path / "local.jsonl"
    data.write_text(
        "\n".join(
            json.dumps({"question": f"What is {a} + 1?", "answer": f"#### {a + 1}"})
            for a in range(3)
        )
        + "\n"
    )
    steps = [
        "-S",
        'beam.separator="."',
        "-S",
        'dvts.separator="."',
        "-S",
        'beam-ias.separator="."',
        "-S",
        "beam.max_steps=3",
        "-S",
        "dvts.max_steps=3",
        "-S",
        "beam-ias.max_steps=3",
    ]
    result = cli(
        "eval",
        "--json",
        "--task",
        "gsm8k",
        "--data",
        str(data),
        "--generator",
        "hf",
        "-G",
        f"model={tiny_lm}",
        "-G",
        "max_new_tokens=8",
        *tiny_prm(tiny_lm),
        "--search",
        "beam",
        "--search",
        "dvts",
        "--search",
        "beam-ias",
        "-n",
        "4",
        "--agg",
        "last",
        *steps,
    )
    assert result.exit_code == 0, result.output
    (row,) = [
        r for r in json.loads(result.output)["metrics"]["tables"][0]["rows"] if r["kind"] == "prm"
    ]
    assert [c["search"].split(":")[0] for c in row["cells"]] == ["beam", "dvts", "beam-ias"]
    assert all(c["compute"]["generated_tokens"] > 0 for c in row["cells"])


@pytest.mark.parametrize(
    "change",
    [
        {"logprobs": "x"},  # AttributeError: str has no get
        {"logprobs": {"tokens": [1, 2], "token_logprobs": [-0.5, -0.5]}},  # "".join: TypeError
        {"logprobs": {"tokens": "ab", "token_logprobs": [-0.5, -0.5]}},
        {"logprobs": {"tokens": ["a", "b"], "token_logprobs": ["high", -0.5]}},
    ],
)
def test_a_completion_of_another_shape_is_one_message(change):
    """A server's answer whose logprobs or usage are of another kind (a buggy or a stranger's
    server; the OpenAI API reference gives lists of text and numbers) was a traceback, or a
    Generation holding text where numbers belong: one ``PrmhError`` quoting the answer."""
    sampling = Sampling(temperature=0.5, max_new_tokens=32)
    body = {"choices": [{"text": "ab", "finish_reason": "length", **change}]}
    with pytest.raises(PrmhError, match="logprobs or usage of another shape"):
        parse_completion(body, request(), sampling, 0.1)
    usage = {"choices": [{"text": "ab"}], "usage": {"completion_tokens": "many"}}
    with pytest.raises(PrmhError, match="completion_tokens 'many'"):
        parse_completion(usage, request(), sampling, 0.1)
