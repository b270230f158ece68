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


@pytest.mark.parametrize(
    "command, args", [("hncse-train", ["--help"]), ("hncse-train", ["--no_such_flag", "1"]),
                      ("python -m hncse.train", ["--no_such_flag", "1"])]
)  # fmt: skip
def test_the_console_script_and_the_module_run_and_name_themselves_in_errors(command, args):
    """(run_hncse.py's one-line errors are the robustness cases'; its `main` is this one, checked above.)"""
    installed = Path(sys.executable).parent / "hncse-train"  # the virtual environment's console script
    if command == "hncse-train" and not installed.exists():
        pytest.skip(f"{installed} is not installed (pip install -e . makes it)")
    argv = [str(installed)] if command == "hncse-train" else [sys.executable, "-m", "hncse.train"]
    proc = subprocess.run([*argv, *args], cwd=REPO, capture_output=True, text=True, timeout=300)
    if args == ["--help"]:
        assert proc.returncode == 0, proc.stderr
        assert "--pm_theta" in proc.stdout and "--objective" in proc.stdout
    else:
        assert proc.returncode == 2
        (line,) = proc.stderr.strip().splitlines()
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
