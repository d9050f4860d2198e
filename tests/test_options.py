"""Option types from a factory's annotations: ``Annotated[int, AtLeast(n)]`` sets a least value,
checked with the type before anything is built (postponed annotations included)."""

from __future__ import annotations

from typing import Annotated

import pytest

from prmh.errors import PrmhError
from prmh.options import Above, AtLeast, AtMost, check_options, describe


def factory(
    rows: Annotated[int, AtLeast(1)] = 4,
    rate: Annotated[float, AtLeast(0)] | None = None,
    name: Annotated[str, "a note, not a bound"] = "x",
):
    return rows, rate, name


def test_a_least_value_is_checked_with_the_type():
    assert check_options(factory, {"rows": "3", "rate": 0, "name": 5}, "prm 'p'") == {
        "rows": 3, "rate": 0.0, "name": "5"
    }  # fmt: skip
    assert check_options(factory, {"rate": None}, "prm 'p'") == {"rate": None}
    for key, value, needs in [
        ("rows", 0, "a whole number of at least 1, got 0"),
        ("rows", "many", "a whole number of at least 1, got 'many'"),
        ("rows", 2.5, "a whole number of at least 1, got 2.5"),
        ("rate", -0.5, "a finite number of at least 0, got -0.5"),
        ("rate", "nan", "a finite number of at least 0, got 'nan'"),
    ]:
        with pytest.raises(PrmhError, match=f"prm 'p': option '{key}' needs {needs}."):
            check_options(factory, {key: value}, "prm 'p'")


def test_prmh_list_shows_the_least_value():
    assert describe(factory) == [
        ("rows", "int >= 1", "4"), ("rate", "float >= 0 | None", "None"), ("name", "str", "'x'")
    ]  # fmt: skip


def bounded(
    share: Annotated[float, Above(0), AtMost(1)] = 0.9,
    cap: Annotated[int, AtMost(8)] | None = None,
):
    return share, cap


def test_upper_and_open_bounds():
    """vLLM takes a share of the GPU's memory in (0, 1] (``gpu_memory_utilization``): 2 or 0
    were accepted until vLLM loaded, minutes later."""
    assert check_options(bounded, {"share": "1", "cap": 8}, "g") == {"share": 1.0, "cap": 8}
    for key, value, needs in [
        ("share", 0, "a finite number above 0 and at most 1, got 0"),
        ("share", 1.5, "a finite number above 0 and at most 1, got 1.5"),
        ("cap", 9, "a whole number of at most 8, got 9"),
    ]:
        with pytest.raises(PrmhError, match=f"g: option '{key}' needs {needs}."):
            check_options(bounded, {key: value}, "g")
    assert describe(bounded) == [
        ("share", "float > 0 <= 1", "0.9"), ("cap", "int <= 8 | None", "None")
    ]  # fmt: skip
