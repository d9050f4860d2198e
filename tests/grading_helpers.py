"""Graders for the grading-pool tests; imported by the worker processes by name."""

import os


def hang_on_loop(prediction: str, gold: str) -> bool:
    while prediction == "loop":
        pass
    return prediction == gold


def die_on_crash(prediction: str, gold: str) -> bool:
    if prediction == "crash":
        os._exit(3)
    return prediction == gold


def hang_if_negative(prediction: str, gold: str) -> bool:
    while prediction.startswith("-"):
        pass
    return prediction.strip() == gold.strip()


_started = []


def slow_first_call(prediction: str, gold: str) -> bool:
    """Takes 2 s on its first call in a process, as a grader's imports can."""
    import time

    if not _started:
        _started.append(True)
        time.sleep(2.0)
    return prediction == gold


def slow_on_sleep(prediction: str, gold: str) -> bool:
    """Takes 1.5 s on the answer "sleep"."""
    import time

    if prediction == "sleep":
        time.sleep(1.5)
        return gold == "sleep"
    return prediction == gold


class Parity:
    """A grader plugin's grader: right when the parity matches; votes by parity."""

    version = "7"

    def grade(self, prediction: str, gold: str) -> bool:
        return int(prediction) % 2 == int(gold) % 2

    def key(self, answer: str) -> str:
        return "odd" if int(answer) % 2 else "even"


def parity() -> Parity:
    return Parity()
