"""Answer pairs for vote keys: (a, b, equivalent), written for prmh's tests and benchmark.

Hand-written pairs in the forms MATH-style answers take, then families of the same forms over
many numbers. ``equivalent`` is the mathematical truth, decided by hand for each form.
"""

from __future__ import annotations

HAND: list[tuple[str, str, bool]] = [
    # the same value written differently
    (r"\frac{\sqrt2}{2}", r"\frac{\sqrt{2}}{2}", True),
    ("x+1", "1+x", True),
    (r"2\sqrt{3}", r"\sqrt{12}", True),
    (r"\frac12", "0.5", True),
    (r"\dfrac{1}{2}", r"\frac{1}{2}", True),
    ("1/2", r"\frac{1}{2}", True),
    (r"\frac{3}{6}", r"\frac{1}{2}", True),
    ("2x+3y", "3y+2x", True),
    ("x^2+2x+1", "(x+1)^2", True),
    ("2(x+1)", "2x+2", True),
    (r"\frac{x}{2}", "0.5x", True),
    (r"3\sqrt{2}", r"\sqrt{18}", True),
    (r"\sqrt{8}", r"2\sqrt2", True),
    (r"\frac{\sqrt{3}}{3}", r"\frac{1}{\sqrt{3}}", True),
    (r"\pi", r"\pi", True),
    (r"2\pi", r"\pi \cdot 2", True),
    (r"\frac{\pi}{2}", r"\frac{1}{2}\pi", True),
    ("10", "10.0", True),
    ("-3", r"-\frac{6}{2}", True),
    ("(1,2)", "(1, 2)", True),
    (r"(\frac12, 3)", "(0.5,3)", True),
    (r"\{1,2\}", r"\{2,1\}", True),
    (r"3 \pm 2\sqrt2", r"3 \pm 2\sqrt{2}", True),
    (r"\{1\pm\sqrt5,-2\}", r"\{1\pm\sqrt{5},-2\}", True),
    (r"\{-2, 1+\sqrt5, 1-\sqrt5\}", r"\{1\pm\sqrt{5},-2\}", True),
    (r"\text{(C)}", "(C)", True),
    (r"5\%", "5", True),
    (r"30^\circ", "30", True),
    ("1,000", "1000", True),
    (r"\$12", "12", True),
    (r"12 \text{ cm}", "12", True),
    (r"x^{2}", "x^2", True),
    (r"a+b", r"b+a", True),
    (r"\frac{a}{b}", r"a/b", True),
    (r"4\cdot 3", "12", True),
    (r"2^{10}", "1024", True),
    (r"\sqrt{2}\cdot\sqrt{2}", "2", True),
    (r"\left(1,2\right)", "(1,2)", True),
    ("0.25", r"\frac{1}{4}", True),
    (r"-\frac{1}{3}", r"\frac{-1}{3}", True),
    # different values that look alike
    ("x+1", "x-1", False),
    (r"2\sqrt{3}", r"3\sqrt{2}", False),
    (r"\frac{\sqrt2}{2}", r"\sqrt{2}", False),
    (r"\frac12", "0.51", False),
    ("(1,2)", "(2,1)", False),
    ("(1,2)", "[1,2]", False),
    (r"\{1,2\}", r"\{1,2,3\}", False),
    (r"3 \pm 2", "5", False),
    (r"3 \pm 2", r"3 \pm 3", False),
    ("x^2", "2x", False),
    ("2x+3y", "3x+2y", False),
    (r"\pi", "3.14", False),
    ("10", "100", False),
    ("-3", "3", False),
    (r"\sqrt{12}", r"\sqrt{13}", False),
    ("1/3", "0.333", False),
    (r"\frac{a}{b}", r"\frac{b}{a}", False),
    ("(C)", "(D)", False),
    ("2^{10}", "1000", False),
    (r"\frac{1}{4}", "0.4", False),
]


def families() -> list[tuple[str, str, bool]]:
    """The same forms over many numbers."""
    out: list[tuple[str, str, bool]] = []
    for k in (2, 3, 5, 6, 7, 8):  # \sqrt7 is \sqrt{7}; \sqrt10 would be \sqrt{1}0
        out.append((rf"\frac{{\sqrt{k}}}{{2}}", rf"\frac{{\sqrt{{{k}}}}}{{2}}", True))
        out.append((rf"\frac{{\sqrt{{{k}}}}}{{2}}", rf"\frac{{\sqrt{{{k + 1}}}}}{{2}}", False))
    for k in (10, 11, 13, 14, 15, 17, 19, 21, 22):
        out.append((rf"\frac{{\sqrt {{{k}}}}}{{2}}", rf"\frac{{1}}{{2}}\sqrt{{{k}}}", True))
        out.append(
            (r"\sqrt10", r"\sqrt{10}", False)
            if k == 10
            else (rf"\frac{{\sqrt{{{k}}}}}{{2}}", rf"\frac{{\sqrt{{{k}}}}}{{3}}", False)
        )
    for a, m in ((2, 2), (2, 3), (3, 2), (2, 5), (3, 3), (4, 2), (2, 7), (5, 2), (3, 5), (2, 6)):
        out.append((rf"{a}\sqrt{{{m}}}", rf"\sqrt{{{a * a * m}}}", True))
        out.append((rf"{a}\sqrt{{{m}}}", rf"\sqrt{{{a * a * m + 1}}}", False))
    for p, q in ((1, 3), (2, 3), (3, 4), (5, 8), (7, 10), (3, 7), (9, 11), (4, 9), (1, 6), (5, 12)):
        out.append((rf"\frac{{{p}}}{{{q}}}", rf"\frac{{{2 * p}}}{{{2 * q}}}", True))
        out.append((rf"\frac{{{p}}}{{{q}}}", rf"\frac{{{q}}}{{{p}}}", False))
    for c in range(1, 11):
        out.append((f"{c}x+{c + 1}", f"{c + 1}+{c}x", True))
        out.append((f"{c}x+{c + 1}", f"{c + 1}x+{c}", False))
    for r in range(2, 12):
        root = str(r) if r < 10 else f"{{{r}}}"
        out.append((rf"{r} \pm \sqrt{root}", rf"{r} \pm \sqrt{{{r}}}", True))
        out.append((rf"{r} \pm \sqrt{{{r}}}", rf"{r} + \sqrt{{{r}}}", False))
    for d in range(1, 11):
        out.append((f"{d / 4:g}", rf"\frac{{{d}}}{{4}}", True))
        out.append((f"{d / 4 + 0.01:g}", rf"\frac{{{d}}}{{4}}", False))
    for lo, hi in ((0, 1), (1, 3), (-2, 5), (2, 7), (-4, -1)):
        out.append((f"[{lo}, {hi})", rf"\left[{lo},{hi}\right)", True))
        out.append((f"[{lo}, {hi})", f"({lo}, {hi}]", False))
    for n in (15, 40, 75):
        out.append((rf"{n}\%", f"{n}", True))
        out.append((rf"{n}^\circ", f"{n + 1}", False))
    return out


PAIRS: list[tuple[str, str, bool]] = HAND + families()
