"""The training command's spellings: `hncse-train` (the console script `pip install` makes), `python -m hncse.train`
and `run_hncse.py` are one `main`, and `accelerate launch` trains the same model through the module and the script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from launch_output import launch_failure
from safetensors.torch import load_file
from tiny_run import REPO, base_argv

import hncse.train
import run_hncse


def test_the_console_script_and_the_script_are_hncse_train():
    scripts = tomllib.loads((Path(REPO) / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert scripts["hncse-train"] == "hncse.train:cli"
    assert run_hncse.main is hncse.train.main


@pytest.mark.parametrize("command", ["hncse-train", "python -m hncse.train", "run_hncse.py"])
def test_every_spelling_prints_the_help_and_names_itself_in_errors(command):
    installed = Path(sys.executable).parent / "hncse-train"  # the virtual environment's console script
    if command == "hncse-train" and not installed.exists():
        pytest.skip(f"{installed} is not installed (pip install -e . makes it)")
    argv = {
        "hncse-train": [str(installed)],
        "python -m hncse.train": [sys.executable, "-m", "hncse.train"],
        "run_hncse.py": [sys.executable, "run_hncse.py"],
    }[command]
    shown = subprocess.run([*argv, "--help"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr
    assert "--pm_theta" in shown.stdout and "--objective" in shown.stdout
    refused = subprocess.run([*argv, "--no_such_flag", "1"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2
    (line,) = refused.stderr.strip().splitlines()
    assert line.startswith(f"{command}: error: unknown argument --no_such_flag")


def test_accelerate_launch_of_the_module_and_of_the_script_train_the_same_model(
    tiny_model_dir, corpus_file, senteval_dir, tmp_path
):
    weights = {}
    for name, target in (("module", ["-m", "hncse.train"]), ("script", ["run_hncse.py"])):
        out = tmp_path / name
        argv = base_argv(tiny_model_dir, corpus_file, senteval_dir, out) + ["--objective", "hybrid_sum"]
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "1", *target, *argv]
        proc = subprocess.run(
            cmd, cwd=REPO, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"}
        )
        assert proc.returncode == 0, launch_failure(proc)
        weights[name] = load_file(out / "model.safetensors")
    assert weights["module"].keys() == weights["script"].keys()
    for key, tensor in weights["module"].items():
        assert tensor.equal(weights["script"][key]), key
    start = load_file(tiny_model_dir / "model.safetensors")
    assert any(not weights["module"][k].equal(start[k]) for k in start if k in weights["module"])  # it trained
