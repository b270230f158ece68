"""Check the GPU path of training on the machine at hand, and write what it measured to docs/gpu.md.

    python -m bench.gpu_check [--out docs/gpu.md] [--steps 300]

With CUDA: the environment (torch, CUDA, NCCL, DeepSpeed, GPUs, bf16); the host-sync audit (training steps that
neither log, evaluate nor save, run by HNCSETrainer under torch.cuda.set_sync_debug_mode("error"), each
objective); training throughput in sentences/s with GPU busy %, for all-MiniLM-L6-v2 and a BERT-base-sized
encoder, batch 64 and 512, length 32, fp32/bf16/fp16, and with torch.compile; `--steps` steps of each objective in
bf16 and fp16 without a non-finite loss; the cached step (--mini_batch_size) against the uncached one in bf16; the
input pipeline (tokenise + collate) in sentences/s; a decoder with LoRA (a randomly initialised Qwen3 of
Qwen3-0.6B's size, last-token pooling, LoRA rank 16, hybrid_sum, bf16, batch 64, length 64: sentences/s, GPU busy
% and the host syncs of its steps). Without CUDA it runs a reduced form of the same checks on
the CPU (the sync audit counts `.item()`/`.tolist()`/`bool()` reads instead), which CI runs so that the command
never rots, and says which checks need a GPU. With ≥ 2 GPUs, `bench.gpu_check.multi_process` checks the global batch
(W GPUs × N against 1 × W·N under NCCL), training through the DDP/ZeRO-2/ZeRO-3 launcher files and a resume on
W GPUs; with fewer, the same checks with 2 CPU processes (gloo).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
import traceback

import torch
from transformers import BertConfig, BertModel, DataCollatorWithPadding, Qwen3Config, Qwen3Model, TrainerCallback

from bench.gpu_check.multi_process import ROWS_PER_PROCESS, global_batch_equality, launcher_runs, objective_loss
from bench.report import markdown_table
from hncse.data import SentenceStream, TokenizingCollator, load_sentences, stream_sentences, tokenize_sentences
from hncse.data.sources import resolve_train_file
from hncse.distributed import LocalBatch
from hncse.modeling import SentenceEncoder
from hncse.modeling.resolve import resolve_model_path
from hncse.parser import parse_args
from hncse.training import HNCSETrainer
from hncse.training.cached_contrastive import cached_contrastive_loss

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
BUILTIN = ["simcse", "pm", "hnm", "hybrid", "hybrid_sum"]


class HostReads:
    """Counts `.item()`, `.tolist()` and `bool()` on tensors while `active` (where each was called from): on a CPU
    these reads cost nothing, but each is a wait for the device on a GPU."""

    NAMES = ("item", "tolist", "__bool__")

    def __init__(self):
        self.active = False
        self.calls: list[str] = []
        self.originals = {name: getattr(torch.Tensor, name) for name in self.NAMES}

    def __enter__(self):
        for name, original in self.originals.items():
            setattr(torch.Tensor, name, self.counting(name, original))
        return self

    def __exit__(self, *exc):
        for name, original in self.originals.items():
            setattr(torch.Tensor, name, original)

    def counting(self, name, original):
        def read(tensor, *args, **kwargs):
            if self.active:
                frame = traceback.extract_stack(limit=2)[0]
                self.calls.append(f"{name} at {frame.filename}:{frame.lineno}")
            return original(tensor, *args, **kwargs)

        return read


class QuietStepAudit(TrainerCallback):
    """Steps 3 to 5 (which neither log, evaluate nor save) under the audit: CUDA's sync debug mode, or HostReads."""

    def __init__(self, reads: HostReads | None):
        self.reads = reads

    def on_step_begin(self, args, state, control, **kwargs):
        if 2 <= state.global_step < 5:
            if self.reads is None:
                torch.cuda.set_sync_debug_mode("error")
            else:
                self.reads.active = True

    def on_step_end(self, args, state, control, **kwargs):
        if self.reads is None:
            torch.cuda.set_sync_debug_mode(0)
        else:
            self.reads.active = False


def sync_audit(corpus: str, model: str, batch: int, workdir: str) -> list[list]:
    """Each objective: 6 HNCSETrainer steps; steps 3-5 must not wait for the device."""
    rows = []
    cuda = torch.cuda.is_available()
    for objective in BUILTIN:
        _, _, args = parse_args([
            "--model_name_or_path", model, "--train_file", corpus, "--output_dir", os.path.join(workdir, objective),
            "--objective", objective, "--per_device_train_batch_size", str(batch), "--max_steps", "6",
            "--logging_steps", "6", "--save_strategy", "no", "--eval_strategy", "no", "--load_best_model_at_end",
            "false", "--disable_tqdm", "true", "--report_to", "none", "--hnm_k", "8", "--hnm_s", "8",
            "--pm_ratio_grid_size", "3", *(["--bf16", "true"] if cuda else []),
        ])  # fmt: skip
        encoder = SentenceEncoder.from_pretrained(model)
        dataset = tokenize_sentences(load_sentences(train_file=corpus, max_samples=6 * batch), encoder.tokenizer, 32)
        reads = None if cuda else HostReads()
        trainer = HNCSETrainer(
            model=encoder, args=args, train_dataset=dataset.remove_columns("num_tokens"),
            data_collator=DataCollatorWithPadding(encoder.tokenizer), callbacks=[QuietStepAudit(reads)],
        )  # fmt: skip
        try:
            with reads if reads is not None else contextlib.nullcontext():
                trainer.train()
            found = [] if reads is None else reads.calls
            rows.append([objective, "none" if not found else f"{len(found)}: {found[0]}"])
        except RuntimeError as error:  # set_sync_debug_mode("error") raises at the first synchronising call
            frames = [f for f in traceback.extract_tb(error.__traceback__) if "/torch/" not in f.filename]
            where = f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""
            rows.append([objective, str(error).splitlines()[0] + where])
        finally:
            if cuda:
                torch.cuda.set_sync_debug_mode(0)
    return rows


def random_bert(tokenizer, layers: int = 12, hidden: int = 768) -> SentenceEncoder:
    """A randomly initialised BERT (default: BERT-base's size), so that no download is needed."""
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=hidden // 64,
        intermediate_size=4 * hidden,
    )  # fmt: skip
    return SentenceEncoder(BertModel(config, add_pooling_layer=False), tokenizer, pooler_type="cls")


def autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


class BusyMeter:
    """Mean GPU utilisation (nvidia-smi's) sampled every 50 ms while active; None where it cannot be read."""

    def __init__(self):
        self.samples: list[int] = []
        self.stop = threading.Event()

    def __enter__(self):
        def sample():
            while not self.stop.wait(0.05):
                with contextlib.suppress(Exception):
                    self.samples.append(torch.cuda.utilization())

        self.thread = threading.Thread(target=sample, daemon=True)
        if torch.cuda.is_available():
            self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join()

    @property
    def busy(self) -> str:
        return f"{statistics.mean(self.samples):.0f}" if self.samples else "n/a"


def train_steps(
    encoder, objective: str, sentences: list[str], batch: int, steps: int, precision: str, device, length: int = 32
):
    """`steps` optimizer steps of the objective on `batch` sentences (`length` tokens); (sentences/s, busy %,
    losses)."""
    encoder.to(device).train()
    loss_fn = objective_loss(objective).to(device)
    trainable = [p for p in encoder.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-5, fused=True)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    texts = (sentences * (batch // len(sentences) + 1))[:batch]
    features = encoder.tokenizer(
        texts, padding="max_length", truncation=True, max_length=length, return_tensors="pt"
    )  # fmt: skip
    features = {k: torch.cat([v, v]).to(device) for k, v in features.items()}
    losses = []

    def step():
        with autocast(device, precision):
            z1, z2 = encoder(**features).chunk(2)
        loss, _ = loss_fn(z1, z2)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.detach())

    for _ in range(min(3, steps)):  # warm-up (kernels, allocator)
        step()
    synchronize(device)
    with BusyMeter() as meter:
        start = time.perf_counter()
        for _ in range(steps):
            step()
        synchronize(device)
        seconds = time.perf_counter() - start
    return batch * steps / seconds, meter.busy, torch.stack(losses).float().cpu()


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def throughput(encoders: dict, sentences, batches, precisions, steps, device, compile_too: bool) -> list[list]:
    rows = []
    for name, make in encoders.items():
        for batch in batches:
            for precision in precisions:
                for compiled in (False, True) if compile_too else (False,):
                    encoder = make()
                    if compiled:
                        encoder.encoder = torch.compile(encoder.encoder)
                    try:
                        rate, busy, _ = train_steps(encoder, "simcse", sentences, batch, steps, precision, device)
                        rows.append([name, batch, precision, "yes" if compiled else "no", f"{rate:,.0f}", busy])
                    except torch.OutOfMemoryError:
                        rows.append([name, batch, precision, "yes" if compiled else "no", "out of memory", "-"])
                    del encoder
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
    return rows


def decoder_lora(tokenizer, sentences, precision: str, steps: int, device, full_size: bool) -> list[list]:
    """A decoder LLM with LoRA: a random Qwen3 (Qwen3-0.6B's sizes on a GPU; 2 layers, hidden 64 on the CPU),
    last-token pooling, LoRA rank 16 on every linear layer, hybrid_sum, batch 64, length 64. The host syncs are
    the synchronising calls of the timed steps (torch.cuda.set_sync_debug_mode("warn"), counted)."""
    import warnings

    sizes = (
        {"hidden_size": 1024, "num_hidden_layers": 28, "num_attention_heads": 16, "num_key_value_heads": 8,
         "head_dim": 128, "intermediate_size": 3072, "vocab_size": 151936}
        if full_size else
        {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
         "head_dim": 16, "intermediate_size": 128, "vocab_size": len(tokenizer)}
    )  # fmt: skip
    torch.manual_seed(0)
    config = Qwen3Config(attention_dropout=0.1, max_position_embeddings=512, attn_implementation="sdpa", **sizes)
    encoder = SentenceEncoder(Qwen3Model(config), tokenizer, pooler_type="lasttoken")
    encoder.add_lora(16, 32.0, 0.05)
    total = sum(p.numel() for p in encoder.parameters())
    trained = sum(p.numel() for p in encoder.parameters() if p.requires_grad)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if device.type == "cuda":
            torch.cuda.set_sync_debug_mode("warn")
        try:
            rate, busy, losses = train_steps(encoder, "hybrid_sum", sentences, 64, steps, precision, device, 64)
        except torch.OutOfMemoryError:
            return [[f"{total / 1e6:,.0f}M", f"{trained / 1e6:.3g}M", precision, "out of memory", "-", "-", "-"]]
        finally:
            if device.type == "cuda":
                torch.cuda.set_sync_debug_mode(0)
    syncs = sum("synchroniz" in str(w.message) for w in caught) if device.type == "cuda" else "n/a (CPU)"
    return [[f"{total / 1e6:,.0f}M", f"{trained / 1e6:.3g}M", precision, f"{rate:,.0f}", busy, syncs,
             f"{losses[0]:.4f} → {losses[-1]:.4f}"]]  # fmt: skip


def stability(make, sentences, precisions, steps, device) -> list[list]:
    rows = []
    for objective in BUILTIN:
        for precision in precisions:
            _, _, losses = train_steps(make(), objective, sentences, 64, steps, precision, device)
            bad = int((~torch.isfinite(losses)).sum())
            rows.append([objective, precision, steps, bad, f"{losses[0]:.4f} → {losses[-1]:.4f}"])
    return rows


def cached_equality(make, sentences, precision, device) -> list[list]:
    """Loss and gradients of the cached step against the uncached step (same mini-batch forwards and dropout)."""
    rows = []
    texts = (sentences * 2)[:32]
    for objective in BUILTIN:
        encoder = make().to(device).train()
        loss_fn = objective_loss(objective)
        features = encoder.tokenizer(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")
        features = {k: torch.cat([v, v]).to(device) for k, v in features.items()}
        mini = 16
        torch.manual_seed(0)
        with autocast(device, precision):
            pieces = [encoder(**{k: v[i : i + mini] for k, v in features.items()}) for i in range(0, 64, mini)]
        z1, z2 = torch.cat(pieces).chunk(2)
        reference, _ = loss_fn(z1, z2)
        reference.backward()
        expected = {n: p.grad.clone() for n, p in encoder.named_parameters() if p.grad is not None}
        encoder.zero_grad(set_to_none=True)
        torch.manual_seed(0)
        loss_fn = objective_loss(objective)
        with autocast(device, precision):
            loss, _ = cached_contrastive_loss(encoder, features, loss_fn, mini, LocalBatch())
        loss.backward()
        worst = max(
            float((p.grad - expected[n]).abs().max() / expected[n].abs().max().clamp_min(1e-12))
            for n, p in encoder.named_parameters()
            if p.grad is not None
        )
        rows.append([objective, precision, f"{abs(loss.item() - reference.item()):.2e}", f"{worst:.2e}"])
    return rows


def input_pipeline(tokenizer, sentences, batch: int = 512, seconds: float = 2.0) -> list[list]:
    """Sentences/s of batches built (length 32): in the main process, from the prepared (tokenised) corpus (a batch is
    its rows padded) and with --streaming (its sentences tokenised and padded); then --streaming as training runs
    it, through a DataLoader with 2 and 4 workers (as many as there are cores)."""
    texts = (sentences * (batch // len(sentences) + 1))[:batch]
    prepared = [dict(row) for row in tokenize_sentences(
        load_sentences_from(texts), tokenizer, 32).remove_columns("num_tokens")]  # fmt: skip
    pipelines = {
        "prepared corpus: rows padded (DataCollatorWithPadding)": (DataCollatorWithPadding(tokenizer), prepared),
        "--streaming: tokenised + padded (TokenizingCollator)": (
            TokenizingCollator(tokenizer, 32), [{"text": t} for t in texts]
        ),
    }  # fmt: skip
    rows = []
    for name, (collate, examples) in pipelines.items():
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            collate(examples)
            done += batch
        rows.append([f"{name}, in the main process", f"{done / (time.perf_counter() - start):,.0f}"])
    for workers in (2, 4):
        if workers <= (os.cpu_count() or 1):
            rate = streamed_through_loader(tokenizer, sentences, batch, workers, seconds)
            rows.append([f"--streaming: a file through the DataLoader, {workers} workers", f"{rate:,.0f}"])
    return rows


def streamed_through_loader(tokenizer, sentences, batch: int, workers: int, seconds: float) -> float:
    """Sentences/s that training's own streamed input gives: a `SentenceStream` over a file (shuffle buffer of
    10,000), tokenised by `TokenizingCollator` in `workers` DataLoader workers, after the workers have started."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "corpus.txt")
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(sentences * (50_000 // len(sentences) + 1)) + "\n")
        raw, source = stream_sentences(train_file=path)
        stream = SentenceStream(raw, source, seed=0, buffer_size=10_000, global_batch=batch)
        loader = torch.utils.data.DataLoader(
            stream, batch_size=batch, num_workers=workers, collate_fn=TokenizingCollator(tokenizer, 32)
        )
        batches = iter(loader)
        for _ in range(2 * workers):  # every worker has started and filled its shuffle buffer
            next(batches)
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            done += len(next(batches)["input_ids"])
        return done / (time.perf_counter() - start)


def load_sentences_from(texts: list[str]):
    from datasets import Dataset

    return Dataset.from_dict({"text": texts})


def environment() -> list[list]:
    import accelerate
    import transformers

    rows = [
        ["python", platform.python_version()], ["torch", torch.__version__],
        ["transformers", transformers.__version__], ["accelerate", accelerate.__version__],
        ["CUDA (torch build)", torch.version.cuda or "none"],
    ]  # fmt: skip
    try:
        import deepspeed

        rows.append(["deepspeed", deepspeed.__version__])
    except ImportError:
        rows.append(["deepspeed", "not installed"])
    if torch.cuda.is_available():
        rows.append(["NCCL", ".".join(map(str, torch.cuda.nccl.version()))])
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            rows.append([f"GPU {i}", f"{p.name}, {p.total_memory / 2**30:.0f} GiB, compute {p.major}.{p.minor}"])
        rows.append(["bf16 supported", str(torch.cuda.is_bf16_supported())])
    else:
        rows.append(["GPUs", "none (CPU form of the checks)"])
    rows.append(["CPU cores", str(os.cpu_count())])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="docs/gpu.md")
    parser.add_argument("--steps", type=int, default=300, help="steps of each objective in the stability check")
    parser.add_argument(
        "--docker_image", default=None, help="also train with DDP inside this image of the Dockerfile (≥ 2 GPUs)"
    )
    args = parser.parse_args()
    started = time.time()
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    corpus = resolve_train_file("wiki1m")
    with open(corpus, encoding="utf-8") as f:
        sentences = [line.strip() for _, line in zip(range(2000), f) if line.strip()]
    tokenizer = SentenceEncoder.from_pretrained(MINILM).tokenizer

    def make_minilm():
        return SentenceEncoder.from_pretrained(MINILM)

    def make_tiny():  # the CPU form: a 2-layer BERT, hidden 64
        return random_bert(tokenizer, layers=2, hidden=64)

    sections = [("Environment", ["", "value"], environment())]
    with tempfile.TemporaryDirectory() as workdir:
        model = MINILM
        if not cuda:
            model = os.path.join(workdir, "tiny-bert")
            make_tiny().save_pretrained(model)
        sections.append((
            "Host syncs in quiet training steps (steps 3-5 of 6: no logging, evaluation or save)",
            ["objective", "synchronising calls" if cuda else "host reads counted (CPU)"],
            sync_audit(corpus, model, 64 if cuda else 16, workdir),
        ))  # fmt: skip
    if cuda:
        precisions = ["fp32", "bf16", "fp16"] if torch.cuda.is_bf16_supported() else ["fp32", "fp16"]
        encoders = {"all-MiniLM-L6-v2": make_minilm, "BERT-base size": lambda: random_bert(tokenizer)}
        rows = throughput(encoders, sentences, [64, 512], precisions, 20, device, compile_too=True)
        half = [p for p in precisions if p != "fp32"]
        stable = stability(make_minilm, sentences, half, args.steps, device)
        cached = cached_equality(make_minilm, sentences, half[0], device)
        decoder = decoder_lora(tokenizer, sentences, half[0], 20, device, full_size=True)
    else:
        rows = throughput({"2-layer BERT, hidden 64": make_tiny}, sentences, [16], ["fp32"], 3, device, False)
        stable = stability(make_tiny, sentences, ["fp32"], 3, device)
        cached = cached_equality(make_tiny, sentences, "fp32", device)
        decoder = decoder_lora(tokenizer, sentences, "fp32", 3, device, full_size=False)
    sections += [
        ("Training throughput (sentences/s, length 32, simcse)", ["encoder", "batch", "precision", "torch.compile",
                                                                  "sentences/s", "GPU busy %"], rows),
        ("Objectives without a non-finite loss", ["objective", "precision", "steps", "non-finite", "loss"], stable),
        ("Cached step (--mini_batch_size 16) against the uncached one, batch 32",
         ["objective", "precision", "loss difference (absolute)", "max gradient difference (relative)"], cached),
        ("Input pipeline (batch 512, length 32)", ["batches from", "sentences/s"],
         input_pipeline(tokenizer, sentences)),
        ("Decoder + LoRA (random Qwen3, lasttoken, LoRA 16, hybrid_sum, batch 64, length 64)",
         ["parameters", "trained (LoRA)", "precision", "sentences/s", "GPU busy %", "host syncs", "loss"], decoder),
    ]  # fmt: skip
    gpus = torch.cuda.device_count()
    nccl = gpus >= 2
    world = gpus if nccl else 2
    with tempfile.TemporaryDirectory() as workdir:
        model = resolve_model_path(MINILM)  # a folder where a package ships it (mounted into Docker)
        if not nccl:
            model = os.path.join(workdir, "tiny-bert")
            make_tiny().save_pretrained(model)
        how = f"{world} GPUs, NCCL" if nccl else "2 CPU processes, gloo"
        sections += [
            (f"Global batch: {world} processes × {ROWS_PER_PROCESS} rows against 1 × {world * ROWS_PER_PROCESS} "
             f"({how}, float32)", ["objective", "loss difference (absolute)", "max gradient difference (relative)"],
             global_batch_equality(world, nccl, workdir, BUILTIN)),
            (f"Training through the launchers ({how}, hybrid, 6 steps, same data and seed)",
             ["launcher", "processes", "loss, step 1 → 6", "largest relative gap to DDP's curve"],
             launcher_runs(world, nccl, model, corpus, workdir, 64 if nccl else 8, nccl and args.docker_image)),
        ]  # fmt: skip
    write(args.out, sections, cuda, nccl, time.time() - started)
    print(f"wrote {args.out}")


def write(path: str, sections, cuda: bool, nccl: bool, seconds: float) -> None:
    command = "python -m bench.gpu_check " + " ".join(sys.argv[1:])
    lines = [
        "# GPU check",
        "",
        f"Written by `{command.strip()}` ({seconds:.0f} s){'' if cuda else ' on a machine without CUDA'}.",
        "",
    ]
    if not cuda:
        lines += [
            "**No GPU here: this is the reduced CPU form.** The sync audit counts host reads instead of running "
            'under `torch.cuda.set_sync_debug_mode("error")`; the sync audit, throughput, stability and the cached '
            "step run on a 2-layer random BERT in fp32 with few steps; bf16/fp16, GPU busy %, all-MiniLM-L6-v2 and "
            "the BERT-base-sized encoder, batches of 64 and 512, and torch.compile need a GPU.",
            "",
        ]
    if not nccl:
        lines += [
            "**Fewer than 2 GPUs here:** the checks across processes (the global batch, the launchers, the resume) "
            "ran with 2 CPU processes (gloo) on a 2-layer random BERT, through torchrun and DeepSpeed's "
            "`--deepspeed` instead of the accelerate launcher files; NCCL and the launcher files need ≥ 2 GPUs.",
            "",
        ]
    if "in the image" not in "".join(str(row) for _, _, rows in sections for row in rows):
        lines += ["The Docker image's run across GPUs was not asked for (`--docker_image IMAGE`, ≥ 2 GPUs).", ""]
    for title, header, rows in sections:
        lines += [f"## {title}", "", markdown_table(header, rows), ""]
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main()
