"""How each PRM reads a solution: the text it sees and the token where each step is scored.

Three shapes cover the published PRMs:

- ``TaggedRecipe``: a template holds the question and the solution; each step is followed by a
  suffix containing a mark (``<extra_0>``, `` ки``, `` [PRM]``); the step is scored at the mark's
  token. Qwen2.5-Math-PRM, Math-Shepherd, ASPRM, value-head PRMs and ``generic`` are presets.
- ``ChatTurnsRecipe`` (RLHFlow): each step is a user turn answered by ``+``; the step is scored
  at the logit that predicts the reply.
- ``SegmentRecipe`` (Skywork): question and steps are tokenized piece by piece, a step token
  after each step; the step is scored there.

Positions come from the character offsets of the marks prmh inserted, never from searching for a
token id, so a tag that also appears in the question cannot shift a score. Each read position
must hold the mark's own id, the one official readers search for (the suffix encoded up to the
mark's end: ``encode(" ки")[-1]``): when a suffix starts with a blank, trailing blanks of a step
are dropped first (SentencePiece reads ``"2.   ки"`` as ``▁▁▁ | ки``, not ``▁ки``), and a mark
the tokenizer still reads as another token, or splits, is refused with the step named.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prmh.errors import PrmhError
from prmh.plugins.prms.batching import Encoded

PROBE_QUESTION = "What is 1 + 1?"
PROBE_STEPS = ["1 + 1 = 2", "The answer is 2."]


def token_positions(
    tokenizer: Any,
    text: str,
    spans: Sequence[tuple[int, int]],
    add_special_tokens: bool,
    what: str,
) -> Encoded:
    """Token ids of ``text`` and, for each character span, the one token that covers it."""
    enc = tokenizer(text, add_special_tokens=add_special_tokens, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    token_at = [-1] * len(text)
    for i, (a, b) in enumerate(offsets):
        for c in range(a, b):
            token_at[c] = i
    positions = []
    for start, end in spans:
        i = token_at[end - 1]
        if i < 0 or offsets[i][0] > start:
            pieces = [
                tokenizer.convert_ids_to_tokens(ids[j])
                for j in sorted({token_at[c] for c in range(start, end) if token_at[c] >= 0})
            ]
            raise PrmhError(
                f"this checkpoint's tokenizer splits the {what} {text[start:end]!r} into "
                f"{pieces}; the recipe needs it as one token. Use the checkpoint the recipe is "
                "made for, or choose another mark."
            )
        positions.append(i)
    return Encoded(list(ids), positions)


def _mark_span(suffix: str, mark: str) -> tuple[int, int]:
    at = suffix.find(mark)
    if not mark or at < 0:
        raise PrmhError(f"the step suffix {suffix!r} does not contain the mark {mark!r}.")
    return at, at + len(mark)


class TaggedRecipe:
    """Template + steps, each followed by ``suffix``; read at the token of ``mark``."""

    def __init__(
        self,
        tokenizer: Any,
        *,
        template: str,
        suffix: str,
        joiner: str,
        mark: str | None = None,
        system_prompt: str | None = None,
        add_special_tokens: bool = True,
        query_template: str = "{question}",
    ):
        self.tokenizer = tokenizer
        self.template, self.suffix, self.joiner = template, suffix, joiner
        self.mark_span = _mark_span(suffix, mark or suffix.strip())
        # the id official readers search for: encode(" ки")[-1] (ASPRM), encode("ки")[-1]
        # (Math-Shepherd; the same id with a SentencePiece tokenizer), encode("<extra_0>")[0]
        mark_ids = tokenizer.encode(suffix[: self.mark_span[1]], add_special_tokens=False)
        self.mark_id = mark_ids[-1] if mark_ids else None
        self.strip_steps = suffix[:1].isspace()
        self.system_prompt = system_prompt
        self.query_template = query_template
        self.chat = template == "chat"
        if self.chat and not getattr(tokenizer, "chat_template", None):
            raise PrmhError("the recipe uses a chat template but the tokenizer has none.")
        if not self.chat and ("{question}" not in template or "{solution}" not in template):
            raise PrmhError(
                f"template {template!r} must contain {{question}} and {{solution}}, or be 'chat'."
            )
        # Chat templates carry their own special tokens; raw text gets the tokenizer's (BOS).
        self.add_special_tokens = add_special_tokens and not self.chat
        self.encode(PROBE_QUESTION, PROBE_STEPS)

    def render(self, question: str, steps: Sequence[str]) -> tuple[str, list[tuple[int, int]]]:
        solution, marks = "", []
        a, b = self.mark_span
        for k, step in enumerate(steps):
            if k:
                solution += self.joiner
            solution += step.rstrip() if self.strip_steps else step
            marks.append((len(solution) + a, len(solution) + b))
            solution += self.suffix
        query = self.query_template.replace("{question}", question)
        if self.chat:
            messages = [
                {"role": "user", "content": query},
                {"role": "assistant", "content": solution},
            ]
            if self.system_prompt is not None:
                messages.insert(0, {"role": "system", "content": self.system_prompt})
            text = self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=False
            )
            offset = text.rfind(solution)
            if offset < 0:
                raise PrmhError("the chat template changed the solution text; cannot find steps.")
        else:
            head, _, tail = self.template.partition("{solution}")
            prefix = head.replace("{question}", query)
            text = prefix + solution + tail.replace("{question}", query)
            offset = len(prefix)
        return text, [(offset + s, offset + e) for s, e in marks]

    def encode(self, question: str, steps: Sequence[str]) -> Encoded:
        text, spans = self.render(question, steps)
        enc = token_positions(self.tokenizer, text, spans, self.add_special_tokens, "step mark")
        for k, p in enumerate(enc.positions):
            if enc.ids[p] != self.mark_id:
                found = self.tokenizer.convert_ids_to_tokens(enc.ids[p])
                raise PrmhError(
                    f"step {k + 1} ends so that this tokenizer reads its mark as {found!r}, not "
                    f"as the mark's own token (id {self.mark_id}); the PRM was never trained "
                    f"to score there. The step ends with {steps[k][-20:]!r}: choose a mark "
                    "(suffix) this tokenizer keeps whole."
                )
        return enc


class ChatTurnsRecipe:
    """RLHFlow: step k is user turn k (the first prefixed by the question), answered by the good
    token; read the logit predicting each reply. The two replies locate themselves: the text
    rendered with good replies and with bad replies differs exactly there."""

    def __init__(self, tokenizer: Any, *, good_token: str = "+", bad_token: str = "-"):
        if len(good_token) != len(bad_token) or not good_token or good_token[0] == bad_token[0]:
            raise PrmhError(
                "rlhflow needs two reply tokens of the same length that differ in their first "
                f"character, not {good_token!r} and {bad_token!r}."
            )
        if not getattr(tokenizer, "chat_template", None):
            raise PrmhError("rlhflow reads a chat; the tokenizer has no chat template.")
        self.tokenizer, self.good, self.bad = tokenizer, good_token, bad_token
        probe_good = self._encode(PROBE_QUESTION, PROBE_STEPS, self.good)
        probe_bad = self._encode(PROBE_QUESTION, PROBE_STEPS, self.bad)
        p = probe_good.positions[0] + 1
        self.good_bad = (probe_good.ids[p], probe_bad.ids[p])

    def _render(self, question: str, steps: Sequence[str], reply: str) -> str:
        conversation: list[dict[str, str]] = []
        for k, step in enumerate(steps):
            step = step.strip()  # as RLHFlow's evaluator does
            conversation.append(
                {"role": "user", "content": f"{question} {step}" if k == 0 else step}
            )
            conversation.append({"role": "assistant", "content": reply})
        return self.tokenizer.apply_chat_template(conversation, tokenize=False)

    def _encode(self, question: str, steps: Sequence[str], reply: str) -> Encoded:
        good, bad = (
            self._render(question, steps, self.good),
            self._render(question, steps, self.bad),
        )
        differ = {i for i in range(min(len(good), len(bad))) if good[i] != bad[i]}
        spans = [(i, i + len(self.good)) for i in sorted(differ) if i - 1 not in differ]
        if len(good) != len(bad) or len(spans) != len(steps):
            raise PrmhError("the chat template renders the replies unevenly; cannot find steps.")
        text = good if reply == self.good else bad
        enc = token_positions(self.tokenizer, text, spans, False, "reply token")
        return Encoded(enc.ids, [p - 1 for p in enc.positions])

    def encode(self, question: str, steps: Sequence[str]) -> Encoded:
        if not steps:  # no turns to template, nothing to read
            return Encoded([], [])
        return self._encode(question, steps, self.good)


class SegmentRecipe:
    """Skywork: BOS + question + newline, then each line of each step encoded alone and followed
    by the step token (Skywork's ``prepare_input`` splits the response on the step token and
    reads a reward after every line); a step is scored after its last line. Encoding lines
    apart keeps the tokenizer from merging a line's end into the step token (``.\n``)."""

    def __init__(self, tokenizer: Any, *, step_token: str = "\n"):
        self.tokenizer = tokenizer
        ids = tokenizer.encode(step_token, add_special_tokens=False)
        if len(ids) != 1:
            raise PrmhError(f"the tokenizer has no single token for the step token {step_token!r}.")
        self.step_id, self.step_token = ids[0], step_token
        self.bos = tokenizer.bos_token or ""

    def encode(self, question: str, steps: Sequence[str]) -> Encoded:
        # the tokenizer's own special-token setting, as the official code calls encode()
        ids = self.tokenizer.encode(self.bos + question + "\n")
        positions = []
        for step in steps:
            for line in step.split(self.step_token):
                ids += [*(self.tokenizer.encode(line) if line else []), self.step_id]
            positions.append(len(ids) - 1)
        return Encoded(ids, positions)


def value_head_recipe(
    tokenizer: Any,
    separator: str,
    query_template: str = "{question}",
    joiner: str = "\n",
    step_suffix: str | None = None,
    add_special_tokens: bool = False,
) -> TaggedRecipe:
    """The value-head layout, for training and scoring alike: the question (through
    ``query_template``), a newline, then the steps joined by ``joiner``, each followed by
    ``step_suffix`` (default: a space and the separator); read at the separator's token. As
    PQM's and UnPRM's code (``'{query}\\n{answer}'``, answer ``" [PRM]\\n".join(steps) + " [PRM]"``,
    encoded with ``add_special_tokens=False``), no BOS unless ``add_special_tokens``."""
    return TaggedRecipe(
        tokenizer,
        template="{question}\n{solution}",
        suffix=f" {separator}" if step_suffix is None else step_suffix,
        mark=separator,
        joiner=joiner,
        query_template=query_template,
        add_special_tokens=add_special_tokens,
    )


class SeparatorRecipe:
    """ReasonEval: the prompt and a separator (the tokenizer's pad token), then each step followed
    by the separator; the separators are taken out of the ids and each step is read where the
    official code records it, ``index - 1 - separators counted before it``. That code counts every
    token equal to the separator, the BOS too when it is the separator (ReasonEval-7B: pad = BOS
    = ``<s>``) and then puts the BOS back, so there each step is read one token before its last:
    prmh keeps those positions, the ones the released scores come from. Only the separators prmh
    inserted are taken out (found by character offsets): a question holding one shifts nothing."""

    def __init__(self, tokenizer: Any, *, template: str, separator: str | None = None):
        separator = separator or tokenizer.pad_token
        ids = tokenizer.encode(separator, add_special_tokens=False) if separator else []
        if len(ids) != 1:
            raise PrmhError(
                f"the step separator {separator!r} is not one token of this tokenizer (the "
                "recipe uses its pad token); give one with -P separator=TOKEN."
            )
        if "{question}" not in template:
            raise PrmhError(f"template {template!r} must contain {{question}}.")
        self.tokenizer, self.template, self.separator = tokenizer, template, separator
        self.lead = int(tokenizer.encode("a")[:1] == ids)  # a BOS equal to the separator
        self.encode(PROBE_QUESTION, PROBE_STEPS)

    def encode(self, question: str, steps: Sequence[str]) -> Encoded:
        text = self.template.replace("{question}", question)
        spans = []
        for piece in ("", *steps):
            text += piece + self.separator
            spans.append((len(text) - len(self.separator), len(text)))
        enc = token_positions(self.tokenizer, text, spans, True, "step separator")
        removed = set(enc.positions)
        ids = [t for i, t in enumerate(enc.ids) if i not in removed]
        return Encoded(ids, [p - 1 - k - self.lead for k, p in enumerate(enc.positions)][1:])


class PiecesRecipe:
    """TRL's stepwise PRM trainer: the BOS (when the tokenizer has one), the prompt, then each
    step followed by the step separator, every piece tokenized alone without special tokens; a
    step is read at the last token of its separator, where the trainer puts its label."""

    def __init__(self, tokenizer: Any, *, separator: str = "\n"):
        self.separator_ids = tokenizer.encode(separator, add_special_tokens=False)
        if not self.separator_ids:
            raise PrmhError(f"the step separator {separator!r} encodes to no token.")
        self.tokenizer = tokenizer

    def encode(self, question: str, steps: Sequence[str]) -> Encoded:
        bos = self.tokenizer.bos_token_id
        ids = [bos] if bos is not None else []
        ids += self.tokenizer.encode(question, add_special_tokens=False)
        positions = []
        for step in steps:
            ids += self.tokenizer.encode(step, add_special_tokens=False) + self.separator_ids
            positions.append(len(ids) - 1)
        return Encoded(ids, positions)
