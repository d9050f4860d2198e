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
