"""Test specifications of code problems: what the ``code`` grader runs a program against.

A code problem's gold answer is a JSON test specification (``test_spec``)::

    {"mode": "function", "entry": "f", "setup": "", "tests": [{"input": "xs = [1, 2]",
     "output": "3"}], "time_per_test": 1.0, "wall": 4.0}

Task files make one from each dataset row with a converter (``tests = "leetcode"`` or
``"livecodebench"`` in the task file), as the datasets' own evaluations read them:

- LeetCodeDataset (``newfacade/LeetCodeDataset``): ``entry_point`` (``Solution().twoSum``),
  ``prompt`` (helper imports, run first) and ``input_output`` (``{"input": "nums = [3,3],
  target = 6", "output": "[0, 1]"}``).
- LiveCodeBench (``livecodebench/code_generation_lite``): ``public_test_cases`` and
  ``private_test_cases`` (JSON, or base64 of zlib of a pickled JSON string: read with an
  unpickler that accepts no class and a bounded decompression), ``metadata.func_name``;
  ``functional`` tests call ``Solution().<func_name>`` with one JSON argument per input line,
  ``stdin`` tests feed the input to the program.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import pickle
import zlib
from typing import Any

from prmh.errors import PrmhError
from prmh.files import parse_json

MAX_TESTS_BYTES = 64 << 20


def test_spec(
    tests: list[dict[str, str]],
    *,
    mode: str = "function",
    entry: str = "f",
    setup: str = "",
    time_per_test: float = 1.0,
    wall: float = 4.0,
) -> str:
    """A code problem's gold answer: its tests as the ``code`` grader reads them."""
    spec = {"mode": mode, "entry": entry, "setup": setup, "tests": tests}
    return json.dumps({**spec, "time_per_test": time_per_test, "wall": wall}, sort_keys=True)


def leetcode(row: dict[str, Any], **limits: float) -> str:
    cases = row.get("input_output")
    if not isinstance(cases, list) or not cases:
        raise ValueError("no input_output test cases")
    tests = [{"input": str(c["input"]), "output": str(c["output"])} for c in cases]
    entry = str(row["entry_point"])
    return test_spec(tests, entry=entry, setup=str(row.get("prompt") or ""), **limits)


class _NoClasses(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refused {module}.{name}: test cases are plain text")


def _private_cases(text: str) -> list[dict[str, Any]]:
    if not text:
        return []
    try:
        return parse_json(text)
    except ValueError:
        pass
    try:
        packed = base64.b64decode(text, validate=True)
        unpacker = zlib.decompressobj()
        raw = unpacker.decompress(packed, MAX_TESTS_BYTES)
        if unpacker.unconsumed_tail:
            raise ValueError(f"test cases larger than {MAX_TESTS_BYTES >> 20} MiB unpacked")
        value = _NoClasses(io.BytesIO(raw)).load()
    except (binascii.Error, zlib.error, pickle.UnpicklingError, EOFError) as e:
        raise ValueError(f"private_test_cases is neither JSON nor packed JSON ({e})") from e
    if not isinstance(value, str | bytes):
        raise ValueError("private_test_cases did not unpack to JSON text")
    return parse_json(value)


def livecodebench(row: dict[str, Any], **limits: float) -> str:
    cases = parse_json(row.get("public_test_cases") or "[]")
    cases += _private_cases(row.get("private_test_cases") or "")
    if not cases:
        raise ValueError("no test cases")
    metadata = row.get("metadata") or "{}"
    metadata = parse_json(metadata) if isinstance(metadata, str) else metadata
    if cases[0].get("testtype") == "functional":
        tests = [
            {
                "input": json.dumps([parse_json(line) for line in str(c["input"]).split("\n")]),
                "output": str(c["output"]),
            }
            for c in cases
        ]
        entry = f"Solution().{metadata['func_name']}"
        return test_spec(tests, entry=entry, **limits)
    tests = [{"input": str(c["input"]), "output": str(c["output"])} for c in cases]
    return test_spec(tests, mode="stdio", **limits)


CONVERTERS = {"leetcode": leetcode, "livecodebench": livecodebench}


def converter(name: str, origin: str) -> Any:
    if name not in CONVERTERS:
        raise PrmhError(
            f"task file {origin}: tests = {name!r} is not a test format prmh reads; formats: "
            f"{', '.join(CONVERTERS)}."
        )
    return CONVERTERS[name]
