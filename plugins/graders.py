"""The built-in answer graders, registered through the public ``prmh_register_grader`` hook.

Each factory lives in ``prmh.grading`` and is registered as an import path, which is how the
grading worker processes load it.
"""

from __future__ import annotations

from prmh import hookimpl


@hookimpl
def prmh_register_grader(register):
    register(
        "math-verify",
        "prmh.grading:math_verify",
        version="1",
        description="math-verify's parser and verifier (needs prmh[math]); default for math tasks",
    )
    register(
        "sympy",
        "prmh.grading:sympy",
        version="1",
        description="prmh's own LaTeX/number parser with sympy equality; never evaluates text",
    )
    register(
        "numeric",
        "prmh.grading:numeric",
        version="1",
        description="Exact numbers (1,000 = 1000.0 = 2000/2); otherwise exact text",
    )
    register("exact", "prmh.grading:exact", version="1", description="Equal text, trimmed")
