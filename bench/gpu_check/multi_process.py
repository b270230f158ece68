"""The part of `python -m bench.gpu_check` that needs several processes: on a machine with ≥ 2 GPUs, one process per
GPU under NCCL through the shipped launcher files; without them, the same checks with 2 CPU processes (gloo).

- The global batch: each objective's loss and gradients on W processes × N rows (negatives gathered) against one
  process × W·N rows, on fixed float32 embeddings.
- Training through the launchers: `accelerate launch` with configs/accelerate/{multi_gpu,zero2,zero3}.yaml (CPU:
  torchrun, and DeepSpeed's ZeRO-2/3 through --deepspeed), 6 steps each on the same data and seed: every launcher's
  loss curve against DDP's.
- Resume: the DDP run's step-3 checkpoint resumed to step 6 (in a new folder) repeats its uninterrupted curve.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from hncse.distributed import LocalBatch, batch_exchange
from hncse.losses import build_loss
from hncse.parser import parse_args

ROWS_PER_PROCESS, DIM = 32, 384
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def objective_loss(objective: str) -> torch.nn.Module:
    """The objective as training builds it, from the config defaults (HNM: k 8, s 8 for small batches)."""
    _, _, args = parse_args(["--train_file", "unused.txt", "--objective", objective, "--hnm_k", "8", "--hnm_s", "8"])
    return build_loss(args)


def fixed_views(rows: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    z1 = torch.randn(rows, DIM, generator=g)
    z2 = z1 + 0.6 * torch.randn(rows, DIM, generator=g)  # positives close to their anchors
    return z1.to(device), z2.to(device)


def global_batch_worker(rank: int, world: int, init_file: str, out_dir: str, objectives: list[str], cuda: bool):
    device = torch.device("cuda", rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if cuda else "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        z1_all, z2_all = fixed_views(world * ROWS_PER_PROCESS, device)
        rows = slice(rank * ROWS_PER_PROCESS, (rank + 1) * ROWS_PER_PROCESS)
        results = {}
        for objective in objectives:
            z1 = z1_all[rows].clone().requires_grad_()
            z2 = z2_all[rows].clone().requires_grad_()
            loss, _ = objective_loss(objective).to(device)(z1, z2, exchange=batch_exchange(True, True))
            loss.backward()
            # DDP averages over processes: the global batch's gradient on this process's rows is grad / world.
            results[objective] = (loss.detach().cpu(), z1.grad.cpu() / world, z2.grad.cpu() / world)
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def global_batch_equality(world: int, cuda: bool, workdir: str, objectives: list[str]) -> list[list]:
    """Rows: objective, |mean of the W local losses - the 1 × W·N loss|, max gradient difference (relative)."""
    folder = os.path.join(workdir, "global-batch")
    os.makedirs(folder, exist_ok=True)
    args = (world, os.path.join(folder, "init"), folder, objectives, cuda)
    mp.spawn(global_batch_worker, args=args, nprocs=world, join=True)
    parts = [torch.load(os.path.join(folder, f"rank{r}.pt")) for r in range(world)]
    device = torch.device("cuda", 0) if cuda else torch.device("cpu")
    rows = []
    for objective in objectives:
        z1, z2 = (z.requires_grad_() for z in fixed_views(world * ROWS_PER_PROCESS, device))
        loss, _ = objective_loss(objective).to(device)(z1, z2, exchange=LocalBatch())
        loss.backward()
        local_mean = torch.stack([p[objective][0] for p in parts]).mean()
        worst = 0.0
        for i, reference in ((1, z1.grad.cpu()), (2, z2.grad.cpu())):
            gathered = torch.cat([p[objective][i] for p in parts])
            worst = max(worst, float((gathered - reference).abs().max() / reference.abs().max()))
        rows.append([objective, f"{abs(local_mean.item() - loss.item()):.2e}", f"{worst:.2e}"])
    return rows


def training_argv(model: str, corpus: str, out: str, max_steps: int, batch: int) -> list[str]:
    return [
        "run_hncse.py", "--model_name_or_path", model, "--train_file", corpus, "--output_dir", out,
        "--max_train_samples", "4096", "--per_device_train_batch_size", str(batch), "--max_steps", str(max_steps),
        "--save_steps", "3", "--resume_state_steps", "3", "--logging_steps", "1", "--eval_strategy", "no",
        "--load_best_model_at_end", "false", "--lr_scheduler_type", "constant", "--learning_rate", "1e-4",
        "--objective", "hybrid", "--hnm_k", "8", "--hnm_s", "8", "--disable_tqdm", "true",
        "--dataloader_pin_memory", "false",
    ]  # fmt: skip


def launchers(world: int, cuda: bool) -> dict[str, tuple[list[str], list[str]]]:
    """name → (the command before run_hncse.py, flags after it)."""
    if cuda:
        accelerate = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(world)]
        return {
            f"{kind}: accelerate launch --config_file configs/accelerate/{name}.yaml": (
                [*accelerate, "--config_file", f"configs/accelerate/{name}.yaml"], []
            )
            for kind, name in (("DDP", "multi_gpu"), ("ZeRO-2", "zero2"), ("ZeRO-3", "zero3"))
        }  # fmt: skip
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(world)]
    return {
        "DDP: torchrun (gloo)": (torchrun, []),
        "ZeRO-2: torchrun --deepspeed ds_configs/zero2.json": (torchrun, ["--deepspeed", "ds_configs/zero2.json"]),
        "ZeRO-3: torchrun --deepspeed ds_configs/zero3.json": (torchrun, ["--deepspeed", "ds_configs/zero3.json"]),
    }


def docker_launcher(image: str, world: int, folders: list[str]) -> tuple[list[str], list[str]]:
    """DDP inside the project's image (its entry point is `accelerate launch`), run as the Dockerfile says: all GPUs,
    --ipc=host, the caller's user; `folders` (model, corpus, outputs) mounted at the same paths."""
    volumes = [arg for folder in folders for arg in ("-v", f"{folder}:{folder}")]
    return [
        "docker", "run", "--rm", "--gpus", "all", "--ipc=host", "--user", f"{os.getuid()}:{os.getgid()}",
        "-e", "HF_HUB_OFFLINE=1", *volumes, image, "--config_file", "configs/accelerate/multi_gpu.yaml",
        "--num_processes", str(world),
    ], []  # fmt: skip


def free_port() -> int:
    """A port no process listens on now: launches running side by side (the suite's workers) never share one."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train(command: list[str], argv: list[str], extra: list[str]) -> tuple[dict[int, float], str]:
    """Run one training; ({step: loss}, the error's last line or "")."""
    torchrun = "torch.distributed.run" in command  # the CPU form (also on a machine with one GPU), else accelerate
    command = [*command, "--master_port" if torchrun else "--main_process_port", str(free_port())]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if torchrun:
        env |= {"CUDA_VISIBLE_DEVICES": "", "DS_ACCELERATOR": "cpu"}
    proc = subprocess.run([*command, *argv, *extra], cwd=REPO, capture_output=True, text=True, env=env)
    if proc.returncode != 0:  # hncse's own one-line error if it gave one, not the launcher's report after it
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        ours = [line for line in lines if line.startswith("run_hncse.py: ")]
        return {}, ((ours or lines)[-1] if lines else f"exit status {proc.returncode}")[:200]
    out = argv[argv.index("--output_dir") + 1]
    with open(os.path.join(out, "trainer_state.json"), encoding="utf-8") as f:
        history = json.load(f)["log_history"]
    return {e["step"]: e["loss"] for e in history if "loss" in e}, ""


def relative_gap(curve: dict[int, float], reference: dict[int, float]) -> str:
    if not curve or sorted(curve) != sorted(reference):
        return "-"
    return f"{max(abs(curve[s] - reference[s]) / abs(reference[s]) for s in reference):.2e}"


def launcher_runs(
    world: int, cuda: bool, model: str, corpus: str, workdir: str, batch: int, docker_image: str | None = None
) -> list[list]:
    """Rows: launcher, processes, loss at steps 1 → 6 (or the error), largest relative gap to DDP's curve; then the
    DDP run resumed from step 3; then, if `docker_image` is given, DDP inside it (`model` must be a local folder)."""
    rows, reference = [], None
    runs = launchers(world, cuda)
    if docker_image:
        folders = [os.path.abspath(model), os.path.dirname(os.path.abspath(corpus)), os.path.abspath(workdir)]
        runs[f"DDP in the image {docker_image}: docker run --gpus all --ipc=host"] = docker_launcher(
            docker_image, world, folders
        )
    for i, (name, (command, extra)) in enumerate(runs.items()):
        out = os.path.join(workdir, f"launcher{i}")
        curve, error = train(command, training_argv(model, corpus, out, 6, batch), extra)
        reference = curve if reference is None else reference
        shown = error or f"{curve[1]:.4f} → {curve[6]:.4f}"
        rows.append([name, world, shown, "reference" if curve is reference else relative_gap(curve, reference)])
    # The DDP run's step-3 checkpoint (--resume_state_steps 3 keeps its resume state) resumed to step 6 in a new
    # folder (how hncse continues a run, which it never changes in place): the curve must be the uninterrupted one's.
    command, extra = next(iter(launchers(world, cuda).values()))
    resume = ["--resume_from_checkpoint", os.path.join(workdir, "launcher0", "checkpoint-3")]
    argv = training_argv(model, corpus, os.path.join(workdir, "resumed"), 6, batch)
    curve, error = train(command, argv, [*extra, *resume]) if reference else ({}, "the DDP run failed")
    rows.append([
        f"{next(iter(launchers(world, cuda)))}, its step-3 checkpoint resumed to step 6", world,
        error or f"{curve[1]:.4f} → {curve[6]:.4f}", relative_gap(curve, reference or {}),
    ])  # fmt: skip
    return rows
