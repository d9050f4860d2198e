"""The plugin manager and registry: built-ins, entry points, failures, names and options."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from prmh.errors import PrmhError
from prmh.registry import KINDS, load_registry


def make_dist(root: Path, dist: str, entry_points: dict[str, str], modules: dict[str, str]) -> None:
    """Install a plugin distribution by hand: modules plus a dist-info with entry points."""
    root.mkdir(parents=True, exist_ok=True)
    for name, source in modules.items():
        (root / f"{name}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    lines = "\n".join(f"{k} = {v}" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[prmh]\n{lines}\n")


def test_builtins_cover_every_core_kind(registry):
    for kind, name in [
        ("task", "arith"),
        ("generator", "sim"),
        ("prm", "oracle"),
        ("splitter", "double-newline"),
        ("aggregator", "mean"),
        ("selector", "argmax"),
        ("search", "best-of-n"),
    ]:
        assert name in registry.names(kind)
    assert set(registry.entries) == set(KINDS)
    assert not registry.failures


def test_each_call_builds_a_fresh_registry():
    a, b = load_registry(), load_registry()
    assert a is not b and a.entries is not b.entries
    a.entries["prm"].clear()
    assert "oracle" in b.names("prm")


def test_unknown_name_lists_close_matches_and_where_to_look(registry):
    with pytest.raises(PrmhError) as e:
        registry.get("prm", "oracel")
    assert "oracle" in str(e.value) and "prmh list prm" in str(e.value)


def test_unknown_option_names_the_options(registry):
    with pytest.raises(PrmhError) as e:
        registry.create("prm", "oracle", {"nosie": 1.0})
    message = str(e.value)
    assert "'nosie'" in message and "Did you mean noise" in message and "confidence" in message


def test_bad_option_value_is_a_user_error(registry):
    with pytest.raises(PrmhError, match="slip_rate must be in"):
        registry.create("generator", "sim", {"slip_rate": 2.0})


@pytest.mark.parametrize("spelling", ["False", "false", "no", "off", "0", False, 0])
def test_boolean_options_take_what_users_type(registry, spelling):
    """``-P quantiles=False`` (not TOML, so it arrives as the text "False") means false."""
    from prmh.matrix import parse_assignment

    value = parse_assignment(f"quantiles={spelling}")[1] if isinstance(spelling, str) else spelling
    prm = registry.create("prm", "oracle", {"quantiles": value})
    assert prm.args["quantiles"] is False and prm.instance.levels is None
    on = registry.create("prm", "oracle", {"quantiles": "True"})
    assert on.args["quantiles"] is True and on.instance.levels is not None


@pytest.mark.parametrize(
    ("kind", "name", "options", "needs"),
    [
        ("prm", "oracle", {"quantiles": "maybe"}, "'quantiles' needs true or false"),
        ("prm", "oracle", {"noise": "abc"}, "'noise' needs a finite number, got 'abc'"),
        ("prm", "oracle", {"noise": float("nan")}, "'noise' needs a finite number, got nan"),
        ("prm", "oracle", {"noise": float("inf")}, "'noise' needs a finite number, got inf"),
        ("generator", "sim", {"slip_rate": [1]}, "'slip_rate' needs a finite number"),
        ("search", "beam", {"width": 2.5}, "'width' needs a whole number"),
        ("prm", "value-head", {"separator": True}, "'separator' needs text"),
        ("generator", "openai", {"api_key": ["sk-1"], "model": "m"}, "got ***"),
        # a word of the name, not a part of one: max_new_tokens was hidden as a secret
        (
            "generator",
            "hf",
            {"max_new_tokens": "x", "model": "m"},
            "'max_new_tokens' needs a whole number, got 'x'",
        ),
    ],
)
def test_option_values_are_checked_against_their_types(registry, kind, name, options, needs):
    with pytest.raises(PrmhError, match=re.escape(needs)):
        registry.create(kind, name, options)


def test_option_values_are_converted_where_unambiguous(registry):
    prm = registry.create("prm", "oracle", {"noise": 1})
    assert prm.args["noise"] == 1.0 and isinstance(prm.args["noise"], float)
    assert registry.create("search", "beam", {"width": "4"}).args["width"] == 4


def test_identity_fills_defaults_and_drops_speed_args(registry):
    implicit = registry.create("generator", "sim")
    explicit = registry.create("generator", "sim", {"slip_rate": 0.06, "delay": 0.5})
    assert implicit.identity == explicit.identity
    assert "delay" not in explicit.identity["args"]
    assert registry.create("generator", "sim", {"slip_rate": 0.1}).identity != implicit.identity


def test_entry_point_plugin_is_found(tmp_path, monkeypatch):
    make_dist(
        tmp_path,
        "prmh-demo",
        {"demo": "demo_plugin"},
        {
            "demo_plugin": """
            from prmh import hookimpl

            @hookimpl
            def prmh_register_aggregator(register):
                register("second", lambda: (lambda s: s.probs[1]), description="second step")
            """
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = load_registry()
    entry = registry.get("aggregator", "second")
    assert entry.plugin == "demo"
    info = {p.name: p for p in registry.plugins}["demo"]
    assert (info.distribution, info.version, info.hooks) == (
        "prmh-demo",
        "1.0",
        ("prmh_register_aggregator",),
    )
    monkeypatch.setenv("PRMH_DISABLE_PLUGINS", "prmh-demo")
    assert "second" not in load_registry().names("aggregator")


def test_a_kind_with_nothing_registered_says_which_setting_may_be_why(monkeypatch):
    """The message listed "The aggregators: ." when the built-in plugin was disabled."""
    monkeypatch.setenv("PRMH_DISABLE_PLUGINS", "prmh.plugins.aggregators")
    with pytest.raises(PrmhError, match="No aggregator is registered: is PRMH_DISABLE_PLUGINS"):
        load_registry().get("aggregator", "mean")


def test_broken_plugins_are_reported_and_do_not_break_the_rest(tmp_path, monkeypatch):
    make_dist(
        tmp_path,
        "prmh-broken",
        {"broken": "broken_plugin", "unknownhook": "odd_plugin", "raises": "raising_plugin"},
        {
            "broken_plugin": "import not_a_module_anywhere\n",
            "odd_plugin": """
            from prmh import hookimpl

            @hookimpl
            def prmh_register_widget(register):
                pass
            """,
            "raising_plugin": """
            from prmh import hookimpl

            @hookimpl
            def prmh_register_prm(register):
                register("half", object)
                raise RuntimeError("boom")
            """,
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = load_registry()
    failures = {f.plugin: f for f in registry.failures}
    assert set(failures) == {"broken", "unknownhook", "raises"}
    assert "not_a_module_anywhere" in failures["broken"].error
    assert "prmh_register_widget" in failures["unknownhook"].error
    assert "boom" in failures["raises"].error
    assert failures["broken"].distribution == "prmh-broken"
    assert "half" not in registry.names("prm")  # a failed hook registers nothing
    assert "oracle" in registry.names("prm")
    with pytest.raises(PrmhError, match=r"failed to load: .*see `prmh plugins`"):
        registry.get("prm", "nope")


def test_a_plugins_error_prints_as_written(tmp_path, monkeypatch, cli):
    """``prmh plugins`` shows a broken plugin's error as the plugin raised it: rich markup in
    it (``[/red]``) raised instead, and ``:smile:`` became an emoji."""
    message = "no model at /models/[/red]:smile:"
    make_dist(
        tmp_path,
        "prmh-loud",
        {"loud": "loud_plugin"},
        {"loud_plugin": f"raise RuntimeError({message!r})\n"},
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    result = cli("plugins")
    assert result.exit_code == 0, result.output
    assert f"plugin loud (prmh-loud) failed to load: RuntimeError: {message}" in result.output


def raising_prm(root: Path, name: str, error: str) -> None:
    """A plugin distribution whose PRM ``name`` raises ``error`` (an expression) when built."""
    source = f"""
        from prmh import hookimpl
        from prmh.errors import PrmhError

        def broken(**options):
            raise {error}

        @hookimpl
        def prmh_register_prm(register):
            register({name!r}, broken)
    """
    make_dist(root, f"prmh-{name}", {name: f"{name}_plugin"}, {f"{name}_plugin": source})


def test_control_codes_in_an_error_are_written_out(tmp_path, monkeypatch, cli):
    """A plugin's error quoting what a model or server said, escape sequences and all (ESC [ 2 J
    clears the screen, ESC ] 0 ; retitles the window: ECMA-48): the one error line writes them
    out (``\\x1b``), where they reached the terminal as they were."""
    raising_prm(
        tmp_path, "noisy", 'PrmhError("the server said: \\x1b[2J\\x1b]0;owned\\x07 go away")'
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    result = cli("eval", "--world", "sim", "--prm", "noisy", "--limit", "2", "-n", "1")
    assert result.exit_code == 2, result.output
    assert "the server said: \\x1b[2J\\x1b]0;owned\\x07 go away" in result.output
    assert "\x1b" not in result.output and "\x07" not in result.output


def test_a_plugins_bug_prints_its_traceback_with_control_codes_written_out(tmp_path):
    """A plugin's own exception (a bug: not a ``PrmhError``) keeps its traceback, but a
    message quoting a model's answer, escape sequences and all, no longer reaches the
    terminal as control codes (ECMA-48: ESC [ 2 J clears the screen)."""
    import os
    import subprocess
    import sys

    raising_prm(tmp_path, "buggy", 'RuntimeError("the model said: \\x1b[2J\\x1b]0;owned\\x07")')
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "prmh", "eval", "--world", "sim", "--prm", "buggy", "--limit",
         "2", "-n", "1", "--results-dir", str(tmp_path / "r")],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1 and "Traceback (most recent call last)" in done.stderr
    assert "RuntimeError: the model said: \\x1b[2J\\x1b]0;owned\\x07" in done.stderr
    assert "\x1b" not in done.stderr and "\x07" not in done.stderr


def test_duplicate_name_names_both_plugins(tmp_path, monkeypatch):
    make_dist(
        tmp_path,
        "prmh-dup",
        {"dup": "dup_plugin"},
        {
            "dup_plugin": """
            from prmh import hookimpl

            @hookimpl
            def prmh_register_prm(register):
                register("oracle", object)
            """
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = load_registry()  # the clash does not stop the rest
    with pytest.raises(PrmhError) as e:
        registry.get("prm", "oracle")
    message = str(e.value)
    assert "prmh.plugins.oracle (prmh)" in message and "dup (prmh-dup)" in message
    assert "PRMH_DISABLE_PLUGINS" in message
    assert registry.get("prm", "tiny").plugin == "prmh.plugins.tiny"
    assert [f.plugin for f in registry.failures] == ["dup"]
    from click.testing import CliRunner

    from prmh.cli import cli

    shown = CliRunner().invoke(cli, ["plugins"])
    assert shown.exit_code == 0 and "registered twice" in shown.output
    helped = CliRunner().invoke(cli, ["--help"])
    assert helped.exit_code == 0 and "rollout" in helped.output  # plugin commands stay
    monkeypatch.setenv("PRMH_DISABLE_PLUGINS", "dup")
    assert load_registry().get("prm", "oracle").plugin == "prmh.plugins.oracle"


def test_lazy_factory_strings_load_on_use(tmp_path, monkeypatch):
    make_dist(
        tmp_path,
        "prmh-lazy",
        {"lazy": "lazy_plugin"},
        {
            "lazy_plugin": """
            from prmh import hookimpl

            @hookimpl
            def prmh_register_prm(register):
                register("heavy", "heavy_module:Heavy")
                register("missing", "no_such_module:Thing")
            """,
            "heavy_module": """
            class Heavy:
                def __init__(self, size: int = 3):
                    self.size = size
            """,
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = load_registry()
    assert registry.create("prm", "heavy", {"size": 5}).instance.size == 5
    with pytest.raises(PrmhError, match="could not be loaded: ModuleNotFoundError"):
        registry.create("prm", "missing")


def test_an_inline_plugin_joins_for_one_block(tmp_path):
    """prmh.testing.inline_plugin registers a plugin object without packaging, for a test."""
    from prmh import StepScores, hookimpl
    from prmh.testing import inline_plugin

    class Plugin:
        @hookimpl
        def prmh_register_aggregator(self, register):
            register("median", lambda: lambda s: sorted(s.probs)[len(s.probs) // 2])

    with inline_plugin(Plugin(), name="my-tests"):
        registry = load_registry()
        median = registry.create("aggregator", "median").instance
        assert median(StepScores((0.9, 0.1, 0.5))) == 0.5
        assert any(p.name == "my-tests" and p.distribution == "inline" for p in registry.plugins)
        import prmh

        result = prmh.evaluate(
            world="sim", agg=["median"], limit=4, budget=[2], results_dir=tmp_path
        )
        assert any("median" in c["row"] for c in result.accuracy())
    with pytest.raises(PrmhError, match="unknown aggregator 'median'"):
        load_registry().get("aggregator", "median")


def test_a_model_folder_is_a_generator_and_a_missing_folder_is_named(cli, tmp_path):
    """``--generator DIR`` reads a causal LM folder (what ``prmh train-generator`` saves) with
    the hf generator, as ``--prm DIR`` reads a PRM folder: it was an unknown generator, listing
    every generator's name. It samples what ``--generator hf -G model=DIR`` samples. A folder
    that does not exist, as a generator or a PRM, is named, not matched to registered names."""
    pytest.importorskip("torch")
    from importlib.resources import files

    model = str(files("prmh.plugins") / "tiny_world" / "generator")
    args = ["--prm", "oracle", "--agg", "min", "--selector", "argmax", "--search", "best-of-n",
            "-n", "2", "--limit", "3", "--json"]  # fmt: skip
    by_folder = cli("eval", "--generator", model, *args)
    assert by_folder.exit_code == 0, by_folder.output
    by_option = cli("eval", "--generator", "hf", "-G", f"model={model}", *args)
    tables = [json.loads(r.output)["metrics"]["tables"][0] for r in (by_folder, by_option)]
    assert tables[0]["generator"] == model and tables[1]["generator"] == f"hf:model={model}"
    for table in tables:  # the time each took aside: the same samples, scores and choices
        for row in table["rows"]:
            for cell in row["cells"]:
                cell.get("compute", {}).pop("wall_seconds", None)
    assert [r["cells"] for r in tables[0]["rows"]] == [r["cells"] for r in tables[1]["rows"]]
    for kind, what in (("--generator", "model"), ("--prm", "PRM")):
        missing = cli("eval", "--world", "sim", kind, str(tmp_path / "gone"), "--limit", "2")
        assert missing.exit_code == 2
        assert f"No such {what} directory: '{tmp_path / 'gone'}' does not exist." in (
            missing.output
        )
