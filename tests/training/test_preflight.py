"""The preflight: its checks in their documented order, the first failing one named, a refused run that loads no
model and writes nothing, and an objective built once for the whole run."""

from __future__ import annotations

import hashlib
import re

import pytest
import torch
from tiny_run import base_argv

import hncse.train
from hncse.errors import HNCSEError
from hncse.losses.registry import Objective
from hncse.modeling import SentenceEncoder
from hncse.parser import parse_args
from hncse.training import preflight
from hncse.training.output_folder import OutputFolder
from hncse.training.preflight import run_preflight

ORDER = ["output folder", "arguments", "optimizer", "launch", "data", "steps", "model", "evaluation sets"]


def test_the_checks_are_listed_in_the_documented_order():
    """The docstring's list; that the checks run in its order is what the next test shows, fault by fault."""
    documented = re.findall(r"^\d\. ([a-z ]+) —", preflight.__doc__, flags=re.MULTILINE)
    assert documented == ORDER


def snapshot(folder) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(folder.rglob("*"))
    }


@pytest.fixture
def faults(tmp_path, corpus_file, senteval_dir, tiny_model_dir, monkeypatch):
    """One fault per check, each removable: (name, extra argv, what its message says)."""
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder", encoding="utf-8")
    three_rows = tmp_path / "three.txt"
    three_rows.write_text("a man is playing .\na woman is singing .\na dog runs .\n", encoding="utf-8")
    empty_senteval = tmp_path / "no-senteval"
    empty_senteval.mkdir()
    gpus = {"count": 4}  # a machine with 4 GPUs, for the launch's fault alone
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus["count"])
    monkeypatch.setattr(torch.accelerator, "is_available", lambda: gpus["count"] > 0)
    for name in ("LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)

    class Faults:
        base = base_argv(tiny_model_dir, corpus_file, senteval_dir, tmp_path / "out")
        present = {
            "output folder": ["--output_dir", str(blocked / "out")],
            "arguments": ["--eval_tasks", "sickr"],  # the best metric stays stsb_spearman
            "optimizer": ["--adam_beta1", "1.5"],
            "launch": ["--use_cpu", "false"],  # and 4 GPUs seen by one process
            "data": ["--text_column", "no_such_column"],
            "steps": ["--train_file", str(three_rows), "--max_steps", "-1", "--num_train_epochs", "1"],
            "model": ["--dropout", "0"],  # unsupervised: the two views would be the same
            "evaluation sets": ["--senteval_dir", str(empty_senteval)],
        }
        messages = {
            "output folder": "is a file, not a folder",
            "arguments": "--metric_for_best_model 'stsb_spearman' is not produced by --eval_tasks sickr",
            "optimizer": "--optim adamw_torch_fused / --lr_scheduler_type linear",
            "launch": "one process sees 4 GPUs",
            "data": "no column 'no_such_column' (--text_column)",
            "steps": "3 training sentences make no full batch of 8 sentences",
            "model": "has no dropout (every dropout probability of its config is 0)",
            "evaluation sets": "missing evaluation file",
        }

        def argv(self, names) -> list[str]:
            extra = [arg for name in names if name != "launch" for arg in self.present[name]]
            gpus["count"] = 4 if "launch" in names else 0
            return self.base + extra

    return Faults()


def test_with_a_fault_at_every_check_each_is_reported_in_turn(faults):
    """All faults at once: the first check's message; remove it, the next one's; … until the run passes."""
    remaining = list(ORDER)
    while remaining:
        with pytest.raises(HNCSEError) as refused:
            run_preflight(*parse_args(faults.argv(remaining)))
        message = str(refused.value)
        assert faults.messages[remaining[0]] in message and "\n" not in message, (remaining[0], message)
        remaining.pop(0)
    found = run_preflight(*parse_args(faults.argv([])))
    assert found.corpus.shape.kind == "sentences" and found.eval_suite is not None and found.predict_suite is None
    assert type(found.loss).__name__ == "SimCSELoss"


@pytest.mark.parametrize("fault", ORDER)
def test_a_refused_run_loads_no_model_and_writes_nothing(faults, fault, tmp_path, monkeypatch, capsys):
    out = tmp_path / "earlier-run"
    (out / "checkpoint-2").mkdir(parents=True)
    (out / "checkpoint-2" / "model.safetensors").write_bytes(b"weights of an earlier run")
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    OutputFolder(str(out)).sweep()  # an earlier hncse run's folder: its ledger names these
    before = snapshot(out)
    loads = []

    def no_loading(*args, **kwargs):
        loads.append(args)
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(SentenceEncoder, "from_pretrained", no_loading)
    monkeypatch.setattr("transformers.AutoModel.from_pretrained", no_loading)
    argv = faults.argv([fault])
    if fault != "output folder":
        argv += ["--output_dir", str(out)]
    with pytest.raises(HNCSEError, match=re.escape(faults.messages[fault])):
        hncse.train.main(argv)
    assert loads == [] and snapshot(out) == before
    assert not (out / "_hncse.lock").exists()


def test_the_objective_is_built_once_and_trained(tiny_model_dir, corpus_file, senteval_dir, tmp_path, monkeypatch):
    built, steps = [], []
    real_build = Objective.build

    def counted(self, source, seed=None):
        loss = real_build(self, source, seed)
        loss.register_forward_hook(lambda *_: steps.append(len(built)))
        built.append(loss)
        return loss

    monkeypatch.setattr(Objective, "build", counted)
    argv = base_argv(tiny_model_dir, corpus_file, senteval_dir, tmp_path / "out") + ["--objective", "hnm"]
    hncse.train.main(argv + ["--eval_strategy", "no", "--load_best_model_at_end", "false", "--max_steps", "2"])
    assert len(built) == 1 and steps == [1, 1]  # one objective, and it is the one that trained both steps


def test_fewer_batches_than_accumulation_steps_still_make_one_update(tiny_model_dir, corpus_file, tmp_path):
    """What check_some_steps lets through: 2 batches of 8 with --gradient_accumulation_steps 4 are one step."""
    import json

    import hncse.train

    sixteen = tmp_path / "sixteen.txt"
    sixteen.write_text("".join(corpus_file.read_text(encoding="utf-8").splitlines(True)[:16]), encoding="utf-8")
    out = tmp_path / "out"
    hncse.train.main(
        ["--model_name_or_path", str(tiny_model_dir), "--train_file", str(sixteen), "--output_dir", str(out),
         "--per_device_train_batch_size", "8", "--gradient_accumulation_steps", "4", "--max_steps", "-1",
         "--num_train_epochs", "1", "--eval_strategy", "no", "--load_best_model_at_end", "false",
         "--dataloader_pin_memory", "false", "--disable_tqdm", "true"]
    )  # fmt: skip
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 1
