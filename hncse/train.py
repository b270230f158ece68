"""Train a sentence encoder with contrastive learning (SimCSE / HNCSE) on unlabelled sentences, or on labelled pairs
and triplets (anchor, positive, hard negatives): the `hncse-train` command, `python -m hncse.train` and
`run_hncse.py` (a checkout's spelling) are this module's `cli`.

    hncse-train configs/quickstart.yaml                                  # offline, CPU, a few minutes
    accelerate launch -m hncse.train configs/paper/bert-base-simcse.yaml # the paper's setup on GPUs
    hncse-train configs/quickstart.yaml --learning_rate 1e-5             # flags override the file

The output directory loads with `SentenceTransformer(path)` and `AutoModel.from_pretrained(path)`.
"""

from __future__ import annotations

import logging
import os
import sys

import datasets
import torch
import transformers

from hncse.errors import run_cli
from hncse.parser import parse_args
from hncse.training.run import run


def main(argv: list[str] | None = None) -> dict:
    """Parse `[config.yaml] [--flag value …]` and run; returns what `hncse.training.run.run` does."""
    model_args, data_args, training_args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO, force=True)
    log_level = training_args.get_process_log_level()
    logging.getLogger("run_hncse").setLevel(log_level)
    datasets.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.set_verbosity(log_level)
    return run(model_args, data_args, training_args)


def main_then_leave_the_process_group(argv: list[str] | None = None) -> dict:
    """`main`, then, with several processes, each waits for the others and leaves the process group: a process
    that exits with the group still open can abort in its communication threads' teardown ("terminate called
    without an active exception", seen under DeepSpeed on busy CPUs).

    On gloo (CPU) the wait is `monitored_barrier`, whose messages go in this thread. A plain barrier keeps a weak
    reference to each collective still in a worker thread's hands (here ZeRO-3's last all-gather, just done), so
    the all-gather's tensors are freed only when the barrier's work is, in a worker thread, after this process was
    woken: if it has begun to exit by then, taking the GIL to free them aborts it (pytorch/pytorch#179291)."""
    result = main(argv)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        if torch.distributed.get_backend() == "gloo":
            torch.distributed.monitored_barrier()
        else:
            torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return result


def cli(prog: str | None = None) -> None:
    """The command: errors as one line `<prog>: error: …` (prog: the script's name, e.g. run_hncse.py or
    hncse-train)."""
    run_cli(main_then_leave_the_process_group, prog or os.path.basename(sys.argv[0]))


if __name__ == "__main__":
    cli("python -m hncse.train")
