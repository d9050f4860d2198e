"""Completions a hostile or broken model could send: the cases that hung or crashed prmh
before, and more of the same kinds. Each must be read, scored, voted on and graded within
its timeout, with nothing executed. ``MARKER`` is created if anything runs model text."""

from __future__ import annotations

MARKER = "/tmp/prmh-hostile-corpus-was-executed"

ANSWERS = [
    "42",
    "1e5000",
    "1e99999999",
    "-1E-99999999",
    "9^9^9^9",
    "10^{10^{10^{10}}}",
    "2^{2^{2^{2^{2}}}}",
    "{" * 5000 + "1" + "}" * 5000,
    "\\frac{" * 300 + "1" + "}{2}" * 300,
    "1" + " m" * 30 + " x",
    "5" + " square feet" * 300,
    f"__import__('os').system('touch {MARKER}')",
    f"eval(\"open('{MARKER}','w')\")",
    f"exec('import os; os.system(\"touch {MARKER}\")')",
    "lambda: 1",
    "x**x**x**x**x**x",
    "factorial(100000)",
    "\\int_0^1 x dx",
    "\\input{/etc/passwd}",
    "\\def\\x{\\x}\\x",
    "%s%s%s%n",
    "1/0",
    "0^0",
    "\\sqrt{-1}",
    "\\infty - \\infty",
    "nan",
    "inf",
    "-0",
    "1e-400",
    "(" + ",".join(str(i) for i in range(2000)) + ")",
    "\\begin{pmatrix}"
    + "\\\\".join("&".join("1" for _ in range(40)) for _ in range(40))
    + "\\end{pmatrix}",
    "\\{" + ",".join("1\\pm\\sqrt{2}" for _ in range(50)) + "\\}",
    "3 \\pm 2 \\pm 1 \\pm 4 \\pm 5",
    "\\left(" * 200 + "1" + "\\right)" * 200,
    "x" * 100_000,
    "1" * 10_000,
    "\u202e42",
    "４２",
    "\x00\x01\x02",
    "🙂" * 1000,
    "\\boxed{",
    "$" * 3000,
    "\\text{" * 1000,
    "0." + "3" * 5000,
    "1,000,000,000,000,000,000,000,000,000",
    "-" * 5000 + "1",
    "\\sqrt[1000000]{2}",
    "\\frac{1}{" + "x+" * 2000 + "1}",
    "e^{e^{e^{e^{e}}}}",
    "\\sin(" * 500 + "x" + ")" * 500,
]

COMPLETIONS = [
    "The answer is 42" + " " * 3000 + "x",
    "The answer is " + "$" * 5000,
    ("The answer is:" + " " * 200 + "\n") * 300,
    "Step 1: " + "1 + " * 20_000 + "1\n\nThe answer is 1",
    "\n\n" * 10_000 + "The answer is 3",
    "The answer is " * 5000,
    "Step 1\r\n\r\nStep 2\r\n\r\n#### " + "9" * 5000,
    "\\boxed{\\boxed{\\boxed{" * 300,
    "Let me think" + "." * 50_000,
]


def completions() -> list[str]:
    """Every hostile answer inside a boxed solution, then the hostile solutions themselves."""
    boxed = [f"Step 1: compute.\n\nThe answer is \\boxed{{{a}}}." for a in ANSWERS]
    said = [f"So the answer is {a}" for a in ANSWERS[::3]]
    return boxed + said + COMPLETIONS
