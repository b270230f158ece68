"""Two CPU processes under torchrun (gloo): data is split between them, negatives are shared, one folder is written."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from hub_standin import HubStandIn, hub_env
from launch_output import launch_failure
from safetensors.torch import load_file

import hncse.training.run
import run_hncse
from bench.gpu_check.multi_process import free_port
from hncse.errors import ConfigError
from hncse.parser import parse_args
from hncse.training.checkpoints import missing_checkpoint_files
from hncse.training.preflight import check_launch

REPO = os.path.dirname(os.path.abspath(run_hncse.__file__))


def torchrun_with_hub(tiny_model_dir, corpus_file, senteval_dir, out, repo_id, *extra) -> subprocess.CompletedProcess:
    """2 gloo processes of run_hncse.py (4 steps, evaluation and checkpoints every 2) pushing to a Hub stand-in;
    checks the run succeeded and that only the main process pushed, once at the end, the folder it saved."""
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
        "run_hncse.py", "--model_name_or_path", str(tiny_model_dir), "--train_file", str(corpus_file),
        "--senteval_dir", str(senteval_dir), "--output_dir", str(out), "--per_device_train_batch_size", "8",
        "--max_steps", "4", "--eval_steps", "2", "--save_steps", "2", "--logging_steps", "1",
        "--disable_tqdm", "true", "--dataloader_pin_memory", "false",
        "--objective", "hybrid", "--hnm_k", "4", "--hnm_s", "4",  # PM and HNM mined over the global batch of 16
        "--push_to_hub", "true", "--hub_model_id", repo_id, *extra,
    ]  # fmt: skip
    with HubStandIn() as hub:
        proc = subprocess.run(
            cmd, cwd=REPO, capture_output=True, text=True, timeout=600,
            env={**os.environ, **hub_env(hub), "OMP_NUM_THREADS": "1"},
        )  # fmt: skip
        assert proc.returncode == 0, launch_failure(proc)
        repo = hub.repos[repo_id]
    assert repo["commits"].count("End of training") == 1 and repo["commits"][-1] == "End of training"
    assert repo["files"]["model.safetensors"] == (out / "model.safetensors").read_bytes()
    assert "modules.json" in repo["files"] and not any(p.startswith("checkpoint-") for p in repo["files"])
    return proc


def torchrun_losses(tiny_model_dir, corpus_file, out, max_steps, save_steps, *extra):
    """2 gloo processes of run_hncse.py (hybrid, constant learning rate, no evaluation): {step: loss} and the run."""
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
        "run_hncse.py", "--model_name_or_path", str(tiny_model_dir), "--train_file", str(corpus_file),
        "--output_dir", str(out), "--per_device_train_batch_size", "8", "--max_steps", str(max_steps),
        "--save_steps", str(save_steps), "--logging_steps", "1", "--eval_strategy", "no",
        "--load_best_model_at_end", "false", "--lr_scheduler_type", "constant", "--objective", "hybrid",
        "--hnm_k", "4", "--hnm_s", "4", "--disable_tqdm", "true", "--dataloader_pin_memory", "false", *extra,
    ]  # fmt: skip
    proc = subprocess.run(
        cmd, cwd=REPO, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert proc.returncode == 0, launch_failure(proc)
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    return {e["step"]: e["loss"] for e in history if "loss" in e}, proc


def test_torchrun_two_processes_train_one_model(tiny_model_dir, corpus_file, senteval_dir, tmp_path):
    from sentence_transformers import SentenceTransformer

    out = tmp_path / "ddp"
    proc = torchrun_with_hub(tiny_model_dir, corpus_file, senteval_dir, out, "standin-user/ddp")
    state = json.loads((out / "trainer_state.json").read_text())
    # 200 sentences, 2 processes x 8 per step, last batch dropped: 12 steps per epoch (one process alone: 25).
    assert state["global_step"] == 4 and abs(state["epoch"] - 4 / 12) < 1e-6
    assert proc.stdout.count("STS dev Spearman x100") == 1  # only the main process reports
    assert proc.stdout.count("global batch 16 sentences per step = 2 process(es) × 8 per device × 1") == 1
    assert "negatives from the global batch of 2 processes" in proc.stderr
    assert SentenceTransformer(str(out), device="cpu").encode(["a man is playing ."]).shape == (1, 32)


@pytest.mark.parametrize("stage", ["zero2", "zero3"])
def test_deepspeed_two_processes_write_a_folder_that_loads(tiny_model_dir, corpus_file, senteval_dir, tmp_path, stage):
    """ZeRO-2/3 on CPU (gloo): training with the shipped config files, evaluation on gathered weights (ZeRO-3),
    and a full-weights output folder that sentence-transformers loads."""
    from sentence_transformers import SentenceTransformer

    out = tmp_path / stage
    deepspeed = ("--deepspeed", f"ds_configs/{stage}.json")
    torchrun_with_hub(tiny_model_dir, corpus_file, senteval_dir, out, f"standin-user/{stage}", *deepspeed)
    state = json.loads((out / "trainer_state.json").read_text())
    losses = [e["loss"] for e in state["log_history"] if "loss" in e]
    assert state["global_step"] == 4 and len(losses) == 4 and all(math.isfinite(x) and x > 0 for x in losses)
    model = SentenceTransformer(str(out), device="cpu")
    assert model.encode(["a man is playing ."]).shape == (1, 32)
    weights = load_file(out / "model.safetensors")
    assert len(weights) > 30 and all(t.numel() > 0 for t in weights.values())  # full tensors, not ZeRO-3 slices


@pytest.mark.parametrize("launcher", ["multi_gpu", "zero2", "zero3"])
def test_launcher_files_leave_the_process_count_to_the_user(launcher):
    """A count fixed in the file would fail, or silently change the global batch, on a machine with fewer GPUs."""
    config = yaml.safe_load((Path(REPO) / "configs" / "accelerate" / f"{launcher}.yaml").read_text())
    assert "num_processes" not in config


def test_accelerate_asks_for_the_process_count():
    proc = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--config_file", "configs/accelerate/multi_gpu.yaml",
         "run_hncse.py", "--help"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "--num_processes" in proc.stderr.strip().splitlines()[-1]


def test_one_process_seeing_several_gpus_is_refused(monkeypatch, tiny_model_dir, corpus_file):
    """Plain `python run_hncse.py` on a 4-GPU machine would become nn.DataParallel: one line names the launcher."""
    argv = ["--model_name_or_path", str(tiny_model_dir), "--train_file", str(corpus_file)]
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch.accelerator, "is_available", lambda: True)
    for name in ("LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match=r"sees 4 GPUs .*`accelerate launch .*--num_processes 4"):
        check_launch(parse_args(argv)[2])
    check_launch(parse_args([*argv, "--use_cpu", "true"])[2])  # asked for the CPU: nothing to refuse


def test_launch_summary_gives_the_global_batch_and_idle_gpus(monkeypatch):
    args = SimpleNamespace(world_size=2, per_device_train_batch_size=8, gradient_accumulation_steps=3, use_cpu=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert hncse.training.run.launch_summary(args) == (
        "global batch 48 sentences per step = 2 process(es) × 8 per device × 3 accumulation step(s)"
    )
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch.accelerator, "is_available", lambda: True)
    assert hncse.training.run.launch_summary(args).endswith(
        "; 2 of this machine's 4 GPUs are idle (accelerate launch --num_processes 4 uses them all)"
    )


def test_two_processes_resume_every_process_objective_state(tiny_model_dir, corpus_file, tmp_path):
    """HNM's sampler state of each process is in the checkpoint (loss_state.pt, loss_state_rank1.pt): the 6-step
    run's checkpoint-3 resumed to step 6 (in a new folder: a finished run is never changed in place), 2 processes
    repeat the loss curve of the uninterrupted 2-process run."""

    def run(out, max_steps, *extra):
        return torchrun_losses(tiny_model_dir, corpus_file, out, max_steps, 3, *extra)[0]

    expected = run(tmp_path / "uninterrupted", 6, "--resume_state_steps", "3")  # checkpoint-3 can be resumed
    checkpoint = tmp_path / "uninterrupted" / "checkpoint-3"
    states = [torch.load(checkpoint / name, weights_only=True) for name in ("loss_state.pt", "loss_state_rank1.pt")]
    assert all(any(key.endswith("_extra_state") for key in state) for state in states)
    assert run(tmp_path / "resumed", 6, "--resume_from_checkpoint", str(checkpoint)) == expected


def test_two_nodes_train_like_one_node_and_only_the_global_main_process_writes(tiny_model_dir, corpus_file, tmp_path):
    """Two torchrun launchers (--nnodes 2, one process each, over loopback) against one launcher with 2 processes:
    the same loss curve; node 1 (given its own output folder here, as a machine without a shared disk) writes only
    its process's resume state, and pushes nothing."""

    def argv(out):
        return [
            "run_hncse.py", "--model_name_or_path", str(tiny_model_dir), "--train_file", str(corpus_file),
            "--output_dir", str(out), "--per_device_train_batch_size", "8", "--max_steps", "3", "--save_steps", "3",
            "--logging_steps", "1", "--eval_strategy", "no", "--load_best_model_at_end", "false",
            "--objective", "hybrid", "--hnm_k", "4", "--hnm_s", "4", "--disable_tqdm", "true",
            "--dataloader_pin_memory", "false", "--push_to_hub", "true", "--hub_model_id", "standin-user/nodes",
        ]  # fmt: skip

    def losses(out):
        history = json.loads((out / "trainer_state.json").read_text())["log_history"]
        return {e["step"]: e["loss"] for e in history if "loss" in e}

    run = [sys.executable, "-m", "torch.distributed.run"]
    port = str(free_port())  # the two launchers must agree on it: --standalone would pick one each
    with HubStandIn() as hub:
        env = {**os.environ, **hub_env(hub), "OMP_NUM_THREADS": "1"}
        one_node = subprocess.run(
            [*run, "--nproc_per_node", "2", "--standalone", *argv(tmp_path / "one-node")],
            cwd=REPO, capture_output=True, text=True, timeout=600, env=env,
        )  # fmt: skip
        assert one_node.returncode == 0, launch_failure(one_node)
        hub.repos.clear()
        nodes = [
            subprocess.Popen(
                [
                    *run,
                    "--nnodes",
                    "2",
                    "--node_rank",
                    str(rank),
                    "--nproc_per_node",
                    "1",
                    "--master_addr",
                    "127.0.0.1",
                    "--master_port",
                    port,
                    *argv(tmp_path / f"node{rank}"),
                ],
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )  # fmt: skip
            for rank in (0, 1)
        ]
        outputs = [node.communicate(timeout=600) for node in nodes]
        assert [node.returncode for node in nodes] == [0, 0], outputs[0][1][-2000:] + outputs[1][1][-2000:]
        commits = hub.repos["standin-user/nodes"]["commits"]  # one push per save, from one process
        assert commits == ["Training in progress, step 3", "End of training"]
    assert losses(tmp_path / "node0") == losses(tmp_path / "one-node")
    # Node 1 keeps only its process's resume state (the Trainer's random state, the objective's state).
    written = sorted(str(p.relative_to(tmp_path / "node1")) for p in (tmp_path / "node1").rglob("*") if p.is_file())
    assert written == ["checkpoint-3/loss_state_rank1.pt", "checkpoint-3/rng_state_1.pth"]
    assert "global batch 16 sentences per step = 2 process(es)" in outputs[0][0]


def test_the_multi_node_launcher_file_is_read_by_accelerate():
    from accelerate.commands.config.config_args import ClusterConfig

    config = ClusterConfig.from_yaml_file(str(Path(REPO) / "configs" / "accelerate" / "multi_node.yaml"))
    assert config.distributed_type == "MULTI_GPU" and config.num_processes == -1  # the user says how many


def test_zero2_offload_checkpoints_resume_on_two_processes(tiny_model_dir, corpus_file, tmp_path):
    """ZeRO-2 with the optimizer offloaded to the CPU keeps its scheduler and optimizer in global_step<N>/ (no
    scheduler.pt): such a checkpoint counts as complete, and the 4-step run's checkpoint-2 resumed to step 4 (in a
    new folder) repeats the uninterrupted run's loss curve (to 1e-5)."""

    def run(out, max_steps, *extra):
        offload = ("--deepspeed", "ds_configs/zero2_offload.json")
        return torchrun_losses(tiny_model_dir, corpus_file, out, max_steps, 2, *offload, *extra)

    expected, _ = run(tmp_path / "uninterrupted", 4, "--resume_state_steps", "2")  # checkpoint-2 can be resumed
    checkpoint = tmp_path / "uninterrupted" / "checkpoint-2"
    assert not (checkpoint / "scheduler.pt").exists() and missing_checkpoint_files(str(checkpoint)) == []
    resumed, _ = run(tmp_path / "resumed", 4, "--resume_from_checkpoint", str(checkpoint))
    # Steps 1-3 repeat exactly; the update after the resume differs in the last bits (DeepSpeed's CPU Adam on the
    # restored float32 master weights): ~2e-7 relative at step 4.
    assert sorted(resumed) == sorted(expected) == [1, 2, 3, 4]
    assert all(resumed[step] == pytest.approx(expected[step], rel=1e-5) for step in expected)


def test_accelerate_launch_cpu_with_several_processes_is_refused(monkeypatch, corpus_file):
    """accelerate starts one process for `--cpu --num_processes 2`: refused, naming torchrun."""
    import hncse.training.preflight

    monkeypatch.setenv("ACCELERATE_USE_CPU", "True")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    launcher = ["python", "accelerate", "launch", "--cpu", "--num_processes", "2", "run_hncse.py"]
    monkeypatch.setattr(hncse.training.preflight, "launcher_command_line", lambda: launcher)
    with pytest.raises(ConfigError, match=r"starts a single process; start 2 CPU processes with `torchrun"):
        check_launch(parse_args(["--train_file", str(corpus_file)])[2])
    launcher[5] = "1"
    check_launch(parse_args(["--train_file", str(corpus_file)])[2])


def test_the_cached_step_under_zero2_repeats_the_uncached_curve_and_zero3_is_refused(
    tiny_model_dir, corpus_file, triplet_file, tmp_path
):
    """ZeRO-2 on 2 processes: --mini_batch_size 4 (each process's 24 rows of triplets in 6 passes) gives the loss
    curve of the uncached ZeRO-2 run, which after step 1 only the gradients decide (dropout off: labelled rows need
    no dropout views, and the mini-batches would draw other masks than one pass). ZeRO-3: one line."""
    zero2 = ("--deepspeed", "ds_configs/zero2.json", "--train_file", str(triplet_file), "--dropout", "0")
    expected, _ = torchrun_losses(tiny_model_dir, corpus_file, tmp_path / "uncached", 3, 10, *zero2)
    cached, _ = torchrun_losses(
        tiny_model_dir, corpus_file, tmp_path / "cached", 3, 10, *zero2, "--mini_batch_size", "4"
    )
    assert sorted(cached) == sorted(expected) == [1, 2, 3]
    assert cached == pytest.approx(expected, rel=1e-4), (cached, expected)

    zero3 = ["--deepspeed", "ds_configs/zero3.json", "--mini_batch_size", "4"]
    args = parse_args(["--train_file", str(corpus_file), "--output_dir", str(tmp_path / "z3"), *zero3])[2]
    from hncse.training.preflight import check_cached_step_backend

    with pytest.raises(ConfigError, match=r"--mini_batch_size is not supported with DeepSpeed ZeRO-3 .* use ZeRO-2"):
        check_cached_step_backend(args)
