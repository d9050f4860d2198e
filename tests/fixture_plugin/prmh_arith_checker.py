"""A PRM that checks the arithmetic of each step, and nothing else."""

import re

from prmh import StepScores, hookimpl

EQUATION = re.compile(r"(-?\d+) ([-+*/]) (-?\d+) = (-?\d+)")


def step_ok(step):
    match = EQUATION.search(step)
    if match is None:
        return True
    a, op, b, c = match.groups()
    a, b, c = int(a), int(b), int(c)
    return {"+": a + b, "-": a - b, "*": a * b, "/": a / b if b else None}[op] == c


class ArithChecker:
    def __init__(self, good=0.9, bad=0.1):
        self.good, self.bad = good, bad

    def score(self, requests):
        results = []
        for request in requests:
            probs, ok = [], True
            for step in request.steps:
                ok = ok and step_ok(step)
                probs.append(self.good if ok else self.bad)
            results.append(StepScores(tuple(probs)))
        return results


@hookimpl
def prmh_register_prm(register):
    register("arith-checker", ArithChecker, description="Checks each step's arithmetic")
