"""Two CPU processes under torchrun (gloo): data is split between them, negatives are shared, one folder is written."""

import json
import math
import os
import subprocess
import sys

import pytest
from hub_standin import HubStandIn, hub_env
from safetensors.torch import load_file

import run_hncse

REPO = os.path.dirname(os.path.abspath(run_hncse.__file__))
PORTS = {"zero2": "29521", "zero3": "29523"}


def assert_pushed_once(hub: HubStandIn, repo_id: str, out) -> None:
    """Only the main process pushed, once at the end, the folder it saved (weights included)."""
    repo = hub.repos[repo_id]
    assert repo["commits"].count("End of training") == 1 and repo["commits"][-1] == "End of training"
    assert repo["files"]["model.safetensors"] == (out / "model.safetensors").read_bytes()
    assert "modules.json" in repo["files"] and not any(p.startswith("checkpoint-") for p in repo["files"])


def test_torchrun_two_processes_train_one_model(tiny_model_dir, corpus_file, senteval_dir, tmp_path):
    from sentence_transformers import SentenceTransformer

    out = tmp_path / "ddp"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
        "run_hncse.py", "--model_name_or_path", str(tiny_model_dir), "--train_file", str(corpus_file),
        "--senteval_dir", str(senteval_dir), "--output_dir", str(out), "--per_device_train_batch_size", "8",
        "--max_steps", "4", "--eval_steps", "2", "--save_steps", "2", "--logging_steps", "1",
        "--disable_tqdm", "true", "--dataloader_pin_memory", "false",
        "--objective", "hybrid", "--hnm_k", "4", "--hnm_s", "4",  # PM and HNM mined over the global batch of 16
    ]  # fmt: skip
    cmd += ["--push_to_hub", "true", "--hub_model_id", "standin-user/ddp"]
    with HubStandIn() as hub:
        proc = subprocess.run(
            cmd, cwd=REPO, capture_output=True, text=True, timeout=600,
            env={**os.environ, **hub_env(hub), "OMP_NUM_THREADS": "1"},
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert_pushed_once(hub, "standin-user/ddp", out)
    state = json.loads((out / "trainer_state.json").read_text())
    # 200 sentences, 2 processes x 8 per step, last batch dropped: 12 steps per epoch (one process alone: 25).
    assert state["global_step"] == 4 and abs(state["epoch"] - 4 / 12) < 1e-6
    assert proc.stdout.count("STS dev Spearman x100") == 1  # only the main process reports
    assert "negatives from the global batch of 2 processes" in proc.stderr
    assert SentenceTransformer(str(out), device="cpu").encode(["a man is playing ."]).shape == (1, 32)


@pytest.mark.parametrize("stage", ["zero2", "zero3"])
def test_deepspeed_two_processes_write_a_folder_that_loads(tiny_model_dir, corpus_file, senteval_dir, tmp_path, stage):
    """ZeRO-2/3 on CPU (gloo): training with the shipped config files, evaluation on gathered weights (ZeRO-3),
    and a full-weights output folder that sentence-transformers loads."""
    from sentence_transformers import SentenceTransformer

    out = tmp_path / stage
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", PORTS[stage],
        "run_hncse.py", "--model_name_or_path", str(tiny_model_dir), "--train_file", str(corpus_file),
        "--senteval_dir", str(senteval_dir), "--output_dir", str(out), "--per_device_train_batch_size", "8",
        "--max_steps", "4", "--eval_steps", "2", "--save_steps", "2", "--logging_steps", "1",
        "--disable_tqdm", "true", "--dataloader_pin_memory", "false", "--deepspeed", f"ds_configs/{stage}.json",
        "--objective", "hybrid", "--hnm_k", "4", "--hnm_s", "4",
    ]  # fmt: skip
    cmd += ["--push_to_hub", "true", "--hub_model_id", f"standin-user/{stage}"]
    with HubStandIn() as hub:
        proc = subprocess.run(
            cmd, cwd=REPO, capture_output=True, text=True, timeout=600,
            env={**os.environ, **hub_env(hub), "OMP_NUM_THREADS": "1"},
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert_pushed_once(hub, f"standin-user/{stage}", out)
    state = json.loads((out / "trainer_state.json").read_text())
    losses = [e["loss"] for e in state["log_history"] if "loss" in e]
    assert state["global_step"] == 4 and len(losses) == 4 and all(math.isfinite(x) and x > 0 for x in losses)
    model = SentenceTransformer(str(out), device="cpu")
    assert model.encode(["a man is playing ."]).shape == (1, 32)
    weights = load_file(out / "model.safetensors")
    assert len(weights) > 30 and all(t.numel() > 0 for t in weights.values())  # full tensors, not ZeRO-3 slices
