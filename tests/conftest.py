"""Shared fixtures: no network, a fresh registry and results directory per test."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import pytest
from system_tools import unavailable

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.pop("PRMH_DISABLE_PLUGINS", None)
os.environ.pop("PRMH_RESULTS_DIR", None)
# A bare `prmh eval` in these tests runs the simulated world (fast, no models); the shipped tiny
# world is tested by name (tests/test_tiny_world.py).
os.environ["PRMH_WORLD"] = "sim"

TESTS = Path(__file__).parent


@pytest.fixture
def registry():
    from prmh.registry import load_registry

    return load_registry()


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """Invoke ``prmh`` in-process with a fresh results directory; returns click's Result."""
    from click.testing import CliRunner

    from prmh.cli import cli as command

    monkeypatch.setenv("PRMH_RESULTS_DIR", str(tmp_path / "results"))
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(command, list(args), catch_exceptions=False)

    invoke.results_dir = tmp_path / "results"
    return invoke


def python_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    return env


PYTHON = sys.executable

# What a command says when an optional package it needs is not installed, and that package.
EXTRAS = {"(torch is missing)": "torch", "needs Ray: pip install": "ray"}


def skip_without_extra(output: str) -> None:
    """Skip a test whose command stopped only because an optional package is not installed
    here (a Python without a torch wheel, say), as its message says; where the package is
    installed (as the README's test command installs it) this never skips."""
    for said, module in EXTRAS.items():
        if said in output and importlib.util.find_spec(module) is None:
            pytest.skip(f"needs {module}, which is not installed: {output.strip()[:160]}")


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` run only where CUDA is available."""
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except ImportError:
        has_gpu = False
    if has_gpu:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def chromium():
    """Debian's chromium and chromedriver; the browser tests skip without them
    (``system_tools``)."""
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        unavailable("Chromium is not installed (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-sync",
        "--disable-component-update",
        "--window-size=1400,1200",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    yield driver
    driver.quit()
