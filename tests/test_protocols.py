"""The typed contracts (``prmh.protocols``): every built-in component satisfies its kind's
protocol, the engine's search context is the documented one, and docs/plugins.md documents
every member of every protocol in the section of its kind."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from prmh import protocols
from prmh.errors import PrmhError
from prmh.registry import KINDS

ROOT = Path(__file__).parent.parent

# Kinds whose built-ins may need a model or a server to be built (hf, openai and vllm
# generators, every PRM preset and recipe); their back-end classes are checked below.
NEEDS_A_MODEL = {"generator", "prm"}
NEEDS_A_FILE = {("task", "samples")}  # a corpus; built from one below
NEEDS_OPTIONS = {("splitter", "separator"): {"at": "."}}  # no sensible default: built with these


def test_every_kind_but_command_has_a_protocol():
    assert set(protocols.KIND_PROTOCOLS) == set(KINDS) - {"command"}


def test_every_built_in_component_satisfies_its_protocol(registry):
    checked = 0
    for kind, protocol in protocols.KIND_PROTOCOLS.items():
        for name, entry in registry.entries[kind].items():
            if not entry.plugin.startswith("prmh.plugins"):
                continue
            try:
                instance = entry.create(NEEDS_OPTIONS.get((kind, name), {})).instance
            except PrmhError:
                needs = kind in NEEDS_A_MODEL or (kind, name) in NEEDS_A_FILE
                assert needs, f"{kind} {name} cannot be built with no options"
                continue
            assert isinstance(instance, protocol), f"{kind} {name} is not a {protocol.__name__}"
            checked += 1
    assert checked > 40


def test_the_model_backed_classes_satisfy_their_protocols(registry):
    from prmh.plugins.generators.hf import HFGenerator
    from prmh.plugins.generators.openai import OpenAIGenerator
    from prmh.plugins.generators.vllm import VLLMGenerator
    from prmh.plugins.prms.factories import RecipePRM

    for cls in (HFGenerator, OpenAIGenerator, VLLMGenerator):
        assert issubclass(cls, protocols.Generator)
    assert issubclass(RecipePRM, protocols.PRM)
    # the shipped tiny PRM (built on first use) is the same back end as every preset
    pytest.importorskip("torch")
    assert type(registry.create("prm", "tiny-calibrated").instance.built()) is RecipePRM


def test_the_corpus_components_satisfy_their_protocols(registry, tmp_path):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"question": "1 + 1?", "answer": "2", "solutions": ["2"]}\n')
    options = {"path": str(corpus)}
    assert isinstance(registry.create("task", "samples", options).instance, protocols.Task)
    generator = registry.create("generator", "file", options).instance
    assert isinstance(generator, protocols.Generator)


def test_optional_capabilities_are_recognised(registry):
    whole = registry.create("aggregator", "whole").instance
    assert isinstance(whole, protocols.WholeSolution)
    assert not isinstance(registry.create("aggregator", "min").instance, protocols.WholeSolution)
    fitted = [
        name
        for name, entry in registry.entries["splitter"].items()
        if isinstance(
            entry.create(NEEDS_OPTIONS.get(("splitter", name), {})).instance, protocols.FitsPool
        )
    ]
    assert fitted, "some built-in splitter fits a threshold on the pool"
    shares = {n for n in registry.names("search") if isinstance(
        registry.create("search", n).instance, protocols.SharesBudgets)}  # fmt: skip
    assert shares == {"best-of-n", "greedy", "bon-ias"}


def test_the_engine_search_context_is_the_documented_one():
    """Every method of the protocol exists on the engine's context with the same parameters."""
    from prmh.engine import SearchContext

    for name in protocols.members(protocols.SearchContext):
        if name in SearchContext.__dataclass_fields__:  # pool_size, and aggregate (a callable)
            continue
        if isinstance(getattr(SearchContext, name), property):  # separator
            assert name in protocols.SearchContext.__annotations__, name
            continue
        want = inspect.signature(getattr(protocols.SearchContext, name))
        got = inspect.signature(getattr(SearchContext, name))
        assert list(want.parameters) == list(got.parameters), name
    # and nothing public on the engine's context is left out of the protocol
    public = {n for n in vars(SearchContext) if not n.startswith("_")}
    public |= {f for f in SearchContext.__dataclass_fields__ if not f.startswith("_")}
    internal = {"workspace", "prm", "splitter", "warnings"}  # what the engine itself reads
    assert public - internal == set(protocols.members(protocols.SearchContext))


def _sections(text: str) -> dict[str, str]:
    parts = re.split(r"^### ", text, flags=re.M)
    return {p.split("\n", 1)[0].strip(): p for p in parts[1:]}


@pytest.mark.parametrize("kind", sorted(protocols.KIND_PROTOCOLS))
def test_plugins_md_documents_every_member_of_the_kind(kind):
    sections = _sections((ROOT / "docs" / "plugins.md").read_text())
    section = sections[f"`prmh_register_{kind}`"]
    wanted = [protocols.KIND_PROTOCOLS[kind], *protocols.OPTIONAL.get(kind, ())]
    for protocol in wanted:
        for member in protocols.members(protocol):
            shown = "(" if member != "__call__" else ""
            assert f"`{member}" in section or (member == "__call__" and "callable" in section), (
                f"docs/plugins.md, {kind}: {protocol.__name__}.{member}{shown} is undocumented"
            )


def test_plugins_md_documents_the_search_context_and_identity():
    sections = _sections((ROOT / "docs" / "plugins.md").read_text())
    context = sections["The search context"]
    for member in protocols.members(protocols.SearchContext):
        assert f"`ctx.{member}" in context, f"docs/plugins.md: ctx.{member} is undocumented"
    assert "`identity_extra`" in (ROOT / "docs" / "plugins.md").read_text()
