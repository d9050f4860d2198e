"""Every `prmh` command in the README's shell examples runs, so the README stays true.

Each command runs as written, in the simulated world and in order (a later one reads what an
earlier one wrote), with sizes cut down (`--limit`), its placeholders filled (a tiny base model
for `./base-model`, a run id for `RUN_ID`) and its comments dropped. A command that needs what
no test machine has (a Hub or GPU model, the user's own checkpoint) is listed in ``ELSEWHERE``
with the reason; a README command in neither is a failure, so a new example must run here.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

README = Path(__file__).parent.parent / "README.md"

ELSEWHERE = {
    "--data local.jsonl --generator hf": "needs the user's own model and data file",
    "--generator vllm": "needs a GPU and a Hub model",
    "./pqm-checkpoint": "needs a PQM checkpoint (the layout is tested in test_prm_references)",
    "--prm generic -P model=./my-prm": "run on a tiny checkpoint by test_prms (generic README)",
    "--samples pqm-math-128.json": "needs PQM's corpus, MATH-500 and a PQM checkpoint",
    "Qwen/Qwen2.5-Math-PRM-7B --rollouts": "needs the Hub PRM (test_calibrated_release)",
    "--prm ./qwen-cal": "needs the calibrated Hub PRM (test_calibrated_release)",
    "-P calibrated=./peft": "needs a release adapter (test_calibrated_release)",
    "--shard $SLURM_ARRAY_TASK_ID": "a SLURM array with GPUs (shards: test_shards)",
    "merge shards/0": "merges the SLURM array's shards (test_shards)",
    "-P server=": "needs vLLM pooling servers (a stand-in in test_prm_server)",
    "-G gpu_memory_utilization=0.5": "needs a GPU and vLLM",
    "--search beam -n 16 --results-dir merged": "needs the merged shards and a GPU",
    "--samples my-corpus.jsonl": "needs the user's corpus; every preset runs in test_corpora",
}


def readme_commands() -> list[str]:
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", README.read_text(), re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if line.startswith("prmh "):
                commands.append(" ".join(line.split()))
    return commands


def _runnable(command: str, base: str, run_id: str | None) -> list[str]:
    command = command.replace("./base-model", base).replace("--prm ...", "--prm oracle")
    command = re.sub(r"\[RUN_ID \.\.\.\]", "", command)
    command = re.sub(r"--limit \d+", "--limit 6", command)
    if run_id:
        command = command.replace("RUN_ID", run_id)
    args = shlex.split(command)[1:]
    if args[0] in ("eval", "rollout", "label") and "--limit" not in args:
        args += ["--limit", "6"]
    if args[0] == "train":
        args += ["--max-steps", "2", "--batch-size", "2"]
    return args


@pytest.fixture
def base(tmp_path):
    pytest.importorskip("torch")
    from prmh.testing import tiny_qwen2, tiny_tokenizer

    tokenizer = tiny_tokenizer()
    path = tmp_path / "base-model"
    tiny_qwen2(tokenizer, hidden=32, layers=1).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def test_every_readme_command_runs(tmp_path, base, monkeypatch):
    from click.testing import CliRunner

    from prmh.cli import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PRMH_WORLD", "sim")
    monkeypatch.setenv("PRMH_RESULTS_DIR", str(tmp_path / "results"))
    commands = readme_commands()
    assert len(commands) >= 15
    ran, run_id = [], None
    for command in commands:
        if any(marker in command for marker in ELSEWHERE):
            continue
        args = _runnable(command, base, run_id)
        result = CliRunner().invoke(cli, args, catch_exceptions=False)
        assert result.exit_code == 0, (command, result.output[-2000:])
        if args[0] == "eval":
            runs = sorted((tmp_path / "results" / "runs").glob("*.json"))
            run_id = max(runs, key=lambda p: p.stat().st_mtime).stem
        ran.append(command)
    assert len(ran) + sum(any(m in c for m in ELSEWHERE) for c in commands) == len(commands)
    assert len(ran) >= 12
    assert {c.split()[1] for c in ran} >= {
        "eval",
        "rollout",
        "label",
        "train",
        "calibrate",
        "analyze",
    }
    assert any(c.startswith("prmh leaderboard add") for c in ran)
