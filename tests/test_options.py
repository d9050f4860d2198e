"""Option types from a factory's annotations: ``Annotated[int, AtLeast(n)]`` sets a least value,
checked with the type before anything is built (postponed annotations included)."""

from __future__ import annotations

from typing import Annotated

import pytest

from prmh.errors import PrmhError
from prmh.options import AtLeast, check_options, describe


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
