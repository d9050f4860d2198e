"""A third party writes a beam-like search from docs/plugins.md alone (the search context
section): the file the docs show runs through ``prmh.evaluate`` beside the built-ins, and with
an exact PRM it beats sampling once, as a beam search must."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import prmh
from prmh.testing import inline_plugin

ROOT = Path(__file__).parent.parent
SOURCE = ROOT / "tests" / "third_party" / "prmh_simple_beam.py"


def _plugin():
    spec = importlib.util.spec_from_file_location("prmh_simple_beam", SOURCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_docs_show_the_tested_search():
    assert SOURCE.read_text().strip() in (ROOT / "docs" / "plugins.md").read_text()


def test_a_search_written_from_the_docs_runs_beside_the_built_ins(tmp_path):
    with inline_plugin(_plugin()):
        result = prmh.evaluate(
            world="sim",
            prm=["oracle"],
            agg=["min"],
            search=["simple-beam", "beam", "best-of-n"],
            budget=[1, 4],
            limit=40,
            results_dir=tmp_path,
        )
    cells = {
        (c["search"], c["budget"]): c for c in result.accuracy() if c["row"].startswith("oracle")
    }
    beam4, once = cells[("simple-beam", 4)], cells[("best-of-n", 1)]
    assert beam4["mean"] > once["mean"] + 0.1  # an exact PRM steers it to right answers
    assert beam4["mean"] >= cells[("beam", 4)]["mean"] - 0.1  # as good as the built-in beam
    assert beam4["prm_calls"] > 4 and beam4["generated_tokens"] > once["generated_tokens"]
