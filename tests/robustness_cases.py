"""Every bad input we know of, as data (`CASES`), and how one is run on the command line: the message seen and
what was left on disk.

Each case runs `python run_hncse.py … ` (or another tool) in a process of its own, after preparing the output
directory where the case needs earlier work in it. tests/test_robustness.py runs the cases on a tiny model and
checks them; `python -m bench.robustness` runs them on the quickstart setup (the bundled all-MiniLM-L6-v2) and
writes docs/robustness.md.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hncse.training.output_folder import LEDGER_NAME
from hncse.training.output_lock import LOCK_NAME
from tests.warm_processes import WarmProcess

REPO = Path(__file__).resolve().parents[1]
ERROR_PREFIX = "run_hncse.py: error: "
# The other command-line tools a case may run (`Case.tool`): how each is started and the name its errors carry.
TOOLS = {"run_hncse.py": ["run_hncse.py"], "hncse-evaluate": ["-m", "hncse.evaluate"],
         "hncse-plot": ["-m", "hncse.plots"]}  # fmt: skip
MODEL = "sentence-transformers/all-MiniLM-L6-v2"  # the quickstart's, from the package that ships it


@dataclass
class Workspace:
    """Where a case runs: a scratch folder and the arguments of a short, valid training run."""

    root: Path
    base_argv: list[str]  # everything but --output_dir; a valid run of a few steps
    corpus: Path  # a valid corpus file
    model: Path  # the folder of the model the valid run trains

    def text_file(self, name: str, content: bytes) -> str:
        """`content` as the file `name`, whole: cases run side by side (the test runs two at a time), so one may
        read a file while another writes it again (a same-folder rename, never a part)."""
        path = self.root / name
        with tempfile.NamedTemporaryFile(dir=self.root, prefix=f".{name}.", delete=False) as f:
            f.write(content)
        os.replace(f.name, path)
        return str(path)


@dataclass
class Case:
    """One bad input. `argv` adds to (and overrides) the workspace's valid run; `prepare` leaves earlier work in
    the output directory first (with the workspace's valid run, plus `prepare` arguments)."""

    name: str
    argv: Callable[[Workspace], list[str]]
    expect: str  # a fragment of the message
    exit_code: int = 2
    prepare: list[str] | None = None
    damage: Callable[[Path], None] | None = None  # what happens to the earlier work (or the folder) first
    file_size_limit: Callable[[Workspace], int] | None = None  # RLIMIT_FSIZE of the case's process (a full disk)
    folder: str | None = None  # the output folder's name, where the arguments name it; else case<N>
    tool: str = "run_hncse.py"  # another tool (`TOOLS`) runs `argv` alone, in the folder a `prepare` run left

    @property
    def error_prefix(self) -> str:
        return f"{self.tool}: error: "

    env: dict[str, str] = field(default_factory=dict)
    unchanged: bool = False  # a case that succeeds must leave the output directory as it was (nothing to do)


@dataclass
class Outcome:
    exit_code: int
    message: str  # the error line, or the warning line for a case that goes on
    traceback: bool
    stderr: str
    before: dict[str, str]  # file → digest, in the output directory, before the case ran
    after: dict[str, str]
    seconds: float

    @property
    def kept_earlier_work(self) -> bool:
        return all(self.after.get(path) == digest for path, digest in self.before.items())


def _long_line(workspace: Workspace) -> list[str]:
    sentences = workspace.corpus.read_text(encoding="utf-8").splitlines()[:40]
    long = " ".join(["the history of the city is long and the river runs through it ."] * 40)
    return ["--train_file", workspace.text_file("long_line.txt", "\n".join([*sentences, long]).encode() + b"\n")]


def _cut_in_half(relative: str) -> Callable[[Path], None]:
    """A copy or a full disk that stopped half way through a file of the output folder."""

    def damage(output_dir: Path) -> None:
        path = output_dir / relative
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    return damage


def _empty_weights(output_dir: Path) -> None:
    (output_dir / "checkpoint-2" / "model.safetensors").write_bytes(b"")


def _below_a_file(workspace: Workspace, name: str) -> str:
    """A path `name` inside a_file.txt, a file: no folder can be made there."""
    return str(Path(workspace.text_file("a_file.txt", b"not a folder\n")) / name)


def _under_a_file(workspace: Workspace) -> list[str]:
    return ["--output_dir", _below_a_file(workspace, "run")]


def _model_without_tokenizer(workspace: Workspace) -> list[str]:
    folder = workspace.root / "model_without_tokenizer"
    folder.mkdir(exist_ok=True)
    for name in ("config.json", "model.safetensors"):
        shutil.copy(workspace.model / name, folder / name)
    return ["--model_name_or_path", str(folder)]


def _zero_width_lines(workspace: Workspace) -> list[str]:
    sentences = workspace.corpus.read_text(encoding="utf-8").splitlines()[:40]
    text = "\n".join(sentences[:10] + ["\u200b", "\u200b\u200b", "\u200c"] + sentences[10:]) + "\n"
    return ["--train_file", workspace.text_file("zero_width.txt", text.encode())]


def _sts_file(name: str, content: bytes, *flags: str) -> Callable[[Workspace], list[str]]:
    """A run whose only dev set (`--eval_tasks none`) is your own STS file `name` holding `content`."""
    return lambda w: ["--eval_strategy", "steps", "--eval_tasks", "none", "--sts_files", w.text_file(name, content),
                      "--metric_for_best_model", f"eval_{name.split('.')[0]}_spearman", *flags]  # fmt: skip


STS_HEADER = b"sentence1,sentence2,score\n"


def _config_only(name: str, model_type: str, **fields) -> Callable[[Workspace], list[str]]:
    """A model folder holding only the config.json of a `model_type` model: the preflight reads no more."""

    def argv(w: Workspace) -> list[str]:
        from transformers import AutoConfig

        folder = w.root / name
        AutoConfig.for_model(model_type, **fields).save_pretrained(folder)
        return ["--model_name_or_path", str(folder)]

    return argv


def _held_by_another_run(output_dir: Path) -> None:
    """Another run (here: this process, which is alive) holds the folder."""
    holder = {"host": socket.gethostname(), "pid": os.getpid(), "since": "2026-01-01 00:00:00"}
    (output_dir / LOCK_NAME).write_text(json.dumps(holder), encoding="utf-8")


def _not_finished(output_dir: Path) -> None:
    """What a stop before a run's end leaves in its ledger: not finished (`OutputFolder.finish` is its last act)."""
    ledger = json.loads((output_dir / LEDGER_NAME).read_text(encoding="utf-8"))
    (output_dir / LEDGER_NAME).write_text(json.dumps({**ledger, "finished": None}), encoding="utf-8")


def _stopped_before_its_end(output_dir: Path) -> None:
    """A run stopped (a kill, Ctrl-C, a crash) after its checkpoint-2, before its final folder."""
    for path in output_dir.iterdir():
        if path.is_file() and path.name != LEDGER_NAME:
            path.unlink()
        elif path.is_dir() and not path.name.startswith("checkpoint-"):
            shutil.rmtree(path)
    _not_finished(output_dir)


def _no_final_folder(output_dir: Path) -> None:
    """Stopped after its last step's checkpoint, before its final folder was saved (e.g. during the evaluation)."""
    for name in ("model.safetensors", "train_results.json"):
        (output_dir / name).unlink()
    _not_finished(output_dir)


def _killed_in_the_final_save(output_dir: Path) -> None:
    """Killed while the final folder was saved: its weights written, its run facts and card not yet."""
    for name in ("run_config.json", "README.md", "training_args.bin", "train_results.json", "all_results.json"):
        (output_dir / name).unlink(missing_ok=True)
    ledger = json.loads((output_dir / LEDGER_NAME).read_text(encoding="utf-8"))
    (output_dir / LEDGER_NAME).write_text(json.dumps({**ledger, "finished": None, "writing": True}), encoding="utf-8")


def _stopped_and(damage: Callable[[Path], None]) -> Callable[[Path], None]:
    def both(output_dir: Path) -> None:
        _stopped_before_its_end(output_dir)
        damage(output_dir)

    return both


def _drop_from_newest(name: str) -> Callable[[Path], None]:
    """A newest checkpoint that lost one of its files after its save (a copy, a clean-up)."""
    return _stopped_and(lambda output_dir: (output_dir / "checkpoint-2" / name).unlink())


def _users_files(*names: str) -> Callable[[Path], None]:
    """An --output_dir that already holds someone's files."""

    def write(output_dir: Path) -> None:
        output_dir.mkdir(parents=True, exist_ok=True)
        for name in names:
            (output_dir / name).write_text("{}\n" if name.endswith(".json") else "mine\n", encoding="utf-8")

    return write


def _global_step_removed(output_dir: Path) -> None:
    _stopped_before_its_end(output_dir)
    path = output_dir / "checkpoint-2" / "trainer_state.json"
    state = json.loads(path.read_text(encoding="utf-8"))
    del state["global_step"]
    path.write_text(json.dumps(state), encoding="utf-8")


def _drop_trainer_state(output_dir: Path) -> None:
    """A kill while checkpoint-2 was being written: its last file never arrived."""
    (output_dir / "checkpoint-2" / "trainer_state.json").unlink()


CASES = [
    Case("missing train file", lambda w: ["--train_file", str(w.root / "no_such_file.txt")], "no such file"),
    Case("empty train file", lambda w: ["--train_file", w.text_file("empty.txt", b"")], "no sentences"),
    Case(
        "only blank lines",
        lambda w: ["--train_file", w.text_file("blank.txt", b"\n   \n\t\n\n")],
        "no sentences",
    ),
    Case(
        "non-UTF-8 bytes (Latin-1 on line 3)",
        lambda w: ["--train_file", w.text_file("latin1.txt", "one\ntwo\ncaf\u00e9 au lait\n".encode("latin-1"))],
        "latin1.txt:3: not valid UTF-8 (byte 0xe9 at column 4)",
    ),
    Case("a line longer than --max_seq_length", _long_line, "were truncated", exit_code=0),
    Case("--max_seq_length beyond the model", lambda w: ["--max_seq_length", "100000"], "--max_seq_length 100000"),
    Case("unknown objective", lambda w: ["--objective", "infonce"], "--objective: unknown value 'infonce'"),
    Case("unknown pooler", lambda w: ["--pooler_type", "max"], "pooler_type: unknown value 'max'"),
    Case("misspelt flag", lambda w: ["--lerning_rate", "1e-5"], "--lerning_rate"),
    Case(
        "Hub model id while offline",
        lambda w: ["--model_name_or_path", "bert-base-uncased"],
        "Pass a local folder",
        env={"HF_HUB_OFFLINE": "1"},
    ),
    Case(
        "--push_to_hub while offline",
        lambda w: ["--push_to_hub", "true", "--hub_model_id", "someone/my-encoder"],
        "--push_to_hub: cannot create or reach the Hub repository",
        env={"HF_HUB_OFFLINE": "1"},
    ),
    Case(
        "SentEval folder missing",
        lambda w: ["--senteval_dir", str(w.root / "no_senteval"), "--eval_strategy", "steps"],
        "--senteval_dir",
    ),
    Case(
        "--resume_from_checkpoint that does not exist",
        lambda w: ["--resume_from_checkpoint", str(w.root / "no_checkpoint")],
        "--resume_from_checkpoint",
    ),
    Case(
        "output dir holding another configuration's checkpoints",
        lambda w: ["--learning_rate", "1e-4"],
        "of a different run (learning_rate",
        prepare=[],
        damage=_stopped_before_its_end,
    ),
    Case(
        "checkpoint cut short by a kill",
        lambda w: ["--max_steps", "3"],
        "checkpoint-2 is incomplete",
        exit_code=0,
        prepare=[],
        damage=_stopped_and(_drop_trainer_state),
    ),
    Case(
        "newest checkpoint's weights cut short",
        lambda w: ["--max_steps", "3"],
        "checkpoint-2 is incomplete (model.safetensors cut short)",
        exit_code=0,
        prepare=[],
        damage=_stopped_and(_cut_in_half("checkpoint-2/model.safetensors")),
    ),
    Case(
        "newest checkpoint's weights empty",
        lambda w: ["--max_steps", "3"],
        "checkpoint-2 is incomplete (model.safetensors cut short)",
        exit_code=0,
        prepare=[],
        damage=_stopped_and(_empty_weights),
    ),
    Case(
        "the same command again after it finished",
        lambda w: [],
        "finished at step 2: nothing to do",
        exit_code=0,
        prepare=[],
        unchanged=True,
    ),
    Case(
        "the same command again after a stop between the last step and the final folder",
        lambda w: [],
        "is the run's last step: finishing the run from it without training",
        exit_code=0,
        prepare=[],
        damage=_no_final_folder,
    ),
    Case(
        "another configuration into a finished run saved without checkpoints",
        lambda w: ["--learning_rate", "1e-4", "--save_strategy", "no"],
        "holds a finished run (step 2) of other settings (learning_rate",
        prepare=["--save_strategy", "no"],
    ),
    Case(
        "--overwrite_output_dir with a value refused once the model is loaded",
        lambda w: ["--overwrite_output_dir", "true", "--max_seq_length", "100000"],
        "--max_seq_length 100000",
        prepare=[],
    ),
    Case(
        "--overwrite_output_dir with a beta the optimizer refuses",
        lambda w: ["--overwrite_output_dir", "true", "--adam_beta1", "1.5"],
        "Invalid beta parameter at index 0: 1.5",
        prepare=[],
    ),
    Case(
        "--lr_scheduler_kwargs the schedule does not take",
        lambda w: ["--lr_scheduler_type", "cosine", "--lr_scheduler_kwargs", '{"cycles": 2}'],
        "unexpected keyword argument 'cycles'",
    ),  # fmt: skip
    Case("--output_dir below a file", _under_a_file, "is a file, not a folder"),
    Case(
        "https --train_file while offline",
        lambda w: ["--train_file", "https://example.com/corpus.txt"],
        "https://example.com/corpus.txt: cannot be downloaded",
        env={"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"},
    ),
    Case(
        "--dataset_name while offline",
        lambda w: ["--train_file", "none", "--dataset_name", "someone/sentences"],
        "--dataset_name someone/sentences: cannot be loaded",
        env={"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"},
    ),
    Case("a value of the wrong type", lambda w: ["--learning_rate", "fast"], "invalid float value: 'fast'"),
    Case(
        "gzip-compressed --train_file",
        lambda w: ["--train_file", w.text_file("corpus.txt", gzip.compress(b"one sentence\nanother one\n"))],
        "a gzip-compressed file, not text",
    ),
    Case(
        "CSV with an unclosed quote",
        lambda w: ["--train_file", w.text_file("broken.csv", b'text,label\n"one sentence,1\ntwo,2\n')],
        "broken.csv:2: a quoted field is never closed",
    ),
    Case(
        "CSV with only a header",
        lambda w: ["--train_file", w.text_file("header.csv", b"text,label\n")],
        "no rows below the header",
    ),
    Case(
        "another run writing into the same output folder",
        lambda w: ["--max_steps", "3"],
        "is in use by another run (pid",
        prepare=[],
        damage=_held_by_another_run,
    ),
    Case("a model folder without tokenizer files", _model_without_tokenizer, "no tokenizer files there"),
    Case(
        "CSV whose first text column is a label",
        lambda w: [
            "--train_file",
            w.text_file("labelled.csv", b"label,sentence\npositive,a fine film\nnegative,a dull film\n"),
        ],
        "several text columns (label, sentence)",
    ),  # fmt: skip
    Case("sentences of zero-width characters only", _zero_width_lines, "to no token at all", exit_code=0),
    Case(
        "a triplet CSV with an empty hard negative (earlier run in the folder)",
        lambda w: [
            "--train_file",
            w.text_file("nli.csv", b"sent0,sent1,hard_neg\na man,a person,a cat\ntwo dogs,dogs,\n"),
        ],
        "nli.csv:3: column 'hard_neg' is empty or missing",
        prepare=[],
    ),
    Case(
        "pairs named by a flag that is not a column",
        lambda w: [
            "--train_file",
            w.text_file("pairs.jsonl", b'{"q": "a man", "a": "a person"}\n'),
            "--anchor_column",
            "q",
            "--positive_column",
            "answer",
        ],
        "no column 'answer' (--positive_column)",
    ),  # fmt: skip
    Case(
        "--hard_negative_weight on unlabelled sentences",
        lambda w: ["--hard_negative_weight", "1"],
        "weighs given hard negatives, and the data has none",
    ),
    Case(
        "a corpus smaller than one batch, counted in epochs",
        lambda w: ["--train_file", w.text_file("three.txt", b"one\ntwo\nthree\n"), "--max_steps", "-1"],
        "make no full batch of 8 sentences",
    ),
    Case(
        "a corpus smaller than one batch, with --max_steps",
        lambda w: ["--train_file", w.text_file("three.txt", b"one\ntwo\nthree\n"), "--max_steps", "2"],
        "make no full batch of 8 sentences",
    ),
    Case("--num_train_epochs 0", lambda w: ["--max_steps", "-1", "--num_train_epochs", "0"], "trains nothing"),
    Case("--temperature inf", lambda w: ["--temperature", "inf"], "--temperature must be a finite number, got inf"),
    Case(
        "--dropout 0: an unsupervised run whose two views are the same",
        lambda w: ["--dropout", "0"],
        "the two views of a sentence would be identical",
    ),
    Case("--dropout 1.5", lambda w: ["--dropout", "1.5"], "--dropout must be in [0, 1), got 1.5"),
    Case(
        "--prompt_in_pooling false with no prompt",
        lambda w: ["--prompt_in_pooling", "false"],
        "--prompt_in_pooling false: there is no prompt to leave out of the pooling",
    ),
    Case(
        "--bidirectional false on an encoder",
        lambda w: ["--bidirectional", "false"],
        "is an encoder (bert), which attends both ways",
    ),
    Case(
        "--pooler_type cls on a causal decoder",
        lambda w: [*_config_only("llama", "llama", attention_dropout=0.1)(w), "--pooler_type", "cls"],
        "is a causal decoder (llama), whose first token sees only itself",
    ),
    Case(
        "a decoder as released (attention_dropout 0), unsupervised",
        lambda w: [*_config_only("qwen3", "qwen3")(w), "--pooler_type", "lasttoken"],
        "has no dropout (every dropout probability of its config is 0)",
    ),
    Case(
        "an encoder-decoder model",
        _config_only("t5", "t5"),
        "an encoder-decoder model (t5); hncse trains encoder-only and decoder-only models",
    ),
    Case(
        "--mini_batch_size under DeepSpeed ZeRO-3",
        lambda w: ["--deepspeed", "ds_configs/zero3.json", "--mini_batch_size", "4"],
        "--mini_batch_size is not supported with DeepSpeed ZeRO-3",
    ),
    Case("--output_dir ''", lambda w: ["--output_dir", ""], "--output_dir must name a folder, got ''"),
    Case(
        "--metric_for_best_model no dev set produces, --load_best_model_at_end false",
        lambda w: [
            "--eval_strategy",
            "steps",
            "--eval_steps",
            "1",
            "--load_best_model_at_end",
            "false",
            "--metric_for_best_model",
            "eval_nope",
        ],  # fmt: skip
        "--metric_for_best_model 'eval_nope' is not produced by --eval_tasks",
    ),
    Case("--lora_alpha without --lora_r", lambda w: ["--lora_alpha", "16"], "--lora_alpha applies to LoRA"),
    Case(
        "--lora_target_modules naming no module",
        lambda w: ["--lora_r", "4", "--lora_target_modules", "no_such_proj"],
        "--lora_target_modules: ",
    ),
    Case(
        "--sts_files: a column missing",
        _sts_file("cols.csv", b"s1,s2,score\na man,a person,4\ntwo dogs,a cat,1\n"),
        "no column 'sentence1', 'sentence2'; its columns are ['s1', 's2', 'score']",
    ),
    Case(
        "--sts_files: a score that is not a number",
        _sts_file("word.csv", STS_HEADER + b"a man,a person,4\ntwo dogs,a cat,high\n"),
        "word.csv:3: 'score' is 'high', not a number",
    ),
    Case(
        "--sts_files: fewer than 2 pairs",
        _sts_file("one.jsonl", b'{"sentence1": "a man", "sentence2": "a person", "score": 4}\n'),
        "1 pair(s); a correlation needs at least 2",
    ),
    Case(
        "--sts_files: one score for every pair",
        _sts_file("flat.tsv", b"sentence1\tsentence2\tscore\na\tb\t3\nc\td\t3\n"),
        "every 'score' is 3; Spearman is undefined for a constant score",
    ),
    Case(
        "--sts_files: an empty sentence",
        _sts_file("blank.csv", STS_HEADER + b'a man,a person,4\n"",a cat,1\n'),
        "blank.csv:3: empty 'sentence1': every pair needs two sentences",
    ),
    Case(
        "--sts_files: the same file twice",
        lambda w: [
            "--sts_files",
            w.text_file("dev.csv", STS_HEADER + b"a,b,1\nc,d,2\n"),
            str(w.root / "." / "dev.csv"),
        ],
        "dev.csv is given twice",
    ),
    Case(
        "--sts_columns: two names",
        lambda w: ["--sts_files", w.text_file("two.csv", STS_HEADER + b"a,b,1\nc,d,2\n"), "--sts_columns", "a", "b"],
        "--sts_columns takes three different column names",
    ),
    Case(
        "--metric_for_best_model naming no --sts_files",
        lambda w: [
            "--sts_files",
            w.text_file("mine.csv", STS_HEADER + b"a,b,1\nc,d,2\n"),
            "--eval_strategy",
            "steps",
            "--eval_steps",
            "1",
            "--load_best_model_at_end",
            "true",
            "--metric_for_best_model",
            "eval_my_dev_spearman",
        ],
        "is not produced by --eval_tasks",
    ),  # fmt: skip
    Case(
        "--predict_sts_files: a score that is not a number",
        lambda w: [
            "--do_predict",
            "--predict_task_set",
            "none",
            "--predict_sts_files",
            w.text_file("test.csv", STS_HEADER + b"a,b,1\nc,d,?\n"),
        ],
        "test.csv:3: 'score' is '?', not a number",
    ),  # fmt: skip
    Case(
        "loss or weights become NaN/inf (learning rate 1e38)",
        lambda w: ["--learning_rate", "1e38", "--max_steps", "4"],
        "became",
    ),
]


OWNED_FOLDER_CASES = [
    Case(
        "an --output_dir holding someone's README.md and config.json",
        lambda w: [],
        "holds files that no hncse run wrote there (README.md, config.json)",
        damage=_users_files("README.md", "config.json"),
    ),
    Case(
        "the same with --overwrite_output_dir (it deletes only what hncse wrote)",
        lambda w: ["--overwrite_output_dir", "true"],
        "holds files that no hncse run wrote there (README.md, config.json)",
        damage=_users_files("README.md", "config.json"),
    ),
    Case(
        "an --output_dir holding a pytorch_model.bin model folder",
        lambda w: [],
        "holds files that no hncse run wrote there (config.json, pytorch_model.bin",
        damage=_users_files("config.json", "pytorch_model.bin", "vocab.txt"),
    ),
    Case(
        "someone's file named like a checkpoint in the output folder",
        lambda w: ["--overwrite_output_dir", "true"],
        "holds files that no hncse run wrote there (checkpoint-9)",
        damage=_users_files("checkpoint-9"),
    ),
    Case(
        "a file of the user's added to a finished run's folder",
        lambda w: ["--overwrite_output_dir", "true"],
        "holds files that no hncse run wrote there (notes.txt)",
        prepare=[],
        damage=_users_files("notes.txt"),
    ),
    Case(
        "a finished run again with a larger --max_steps",
        lambda w: ["--max_steps", "3"],
        "holds a finished run (step 2), which this command would change",
        prepare=[],
    ),
    Case(
        "a finished run again with a smaller --max_steps",
        lambda w: ["--max_steps", "1"],
        "holds a finished run (step 2), which this command would change",
        prepare=[],
    ),
    Case(
        "a finished run again with another learning rate",
        lambda w: ["--learning_rate", "1e-4"],
        "holds a finished run (step 2) of other settings (learning_rate",
        prepare=[],
    ),
    Case(
        "--resume_from_checkpoint into the folder of a finished run",
        lambda w: ["--resume_from_checkpoint", str(w.root / "resume-into-finished" / "checkpoint-1")],
        "holds a finished run (step 2), which this command would change",
        folder="resume-into-finished",
        prepare=[],
    ),
    Case(
        "the same command again after a kill during the final save",
        lambda w: [],
        "is the run's last step: finishing the run from it without training",
        exit_code=0,
        prepare=[],
        damage=_killed_in_the_final_save,
    ),
    Case(
        "a newest checkpoint without loss_state.pt (the objective's state)",
        lambda w: ["--max_steps", "3"],
        "checkpoint-2 is incomplete (no loss_state.pt)",
        exit_code=0,
        prepare=[],
        damage=_drop_from_newest("loss_state.pt"),
    ),
    Case(
        "a newest checkpoint without optimizer.pt",
        lambda w: ["--max_steps", "3"],
        "checkpoint-2 is incomplete (no optimizer.pt",
        exit_code=0,
        prepare=[],
        damage=_drop_from_newest("optimizer.pt"),
    ),
    Case(
        "a newest checkpoint without run_config.json",
        lambda w: ["--max_steps", "3"],
        "checkpoint-2 is incomplete (no run_config.json",
        exit_code=0,
        prepare=[],
        damage=_drop_from_newest("run_config.json"),
    ),
    Case(
        "a newest checkpoint without its manifest (a save cut short)",
        lambda w: ["--max_steps", "3"],
        "checkpoint-2 is incomplete (no hncse_checkpoint.json",
        exit_code=0,
        prepare=[],
        damage=_drop_from_newest("hncse_checkpoint.json"),
    ),
    Case(
        "a checkpoint whose trainer_state.json has no global_step",
        lambda w: ["--max_steps", "3"],
        "trainer_state.json cut short or without global_step",
        exit_code=0,
        prepare=[],
        damage=_global_step_removed,
    ),
    Case(
        "--resume_from_checkpoint with another learning rate",
        lambda w: [
            "--max_steps",
            "3",
            "--learning_rate",
            "1e-4",
            "--resume_from_checkpoint",
            str(w.root / "resume-lr" / "checkpoint-2"),
        ],  # fmt: skip
        "resuming restores its learning_rate",
        folder="resume-lr",
        prepare=[],
        damage=_stopped_before_its_end,
    ),
    Case(
        "--resume_from_checkpoint of a checkpoint without loss_state.pt",
        lambda w: ["--max_steps", "3", "--resume_from_checkpoint", str(w.root / "resume-no-loss" / "checkpoint-2")],
        "is not a complete checkpoint (no loss_state.pt)",
        folder="resume-no-loss",
        prepare=[],
        damage=_drop_from_newest("loss_state.pt"),
    ),
    Case(
        "--resume_from_checkpoint of another architecture's checkpoint",
        lambda w: [
            "--max_steps",
            "3",
            "--resume_from_checkpoint",
            str(w.root / "resume-other" / "checkpoint-2"),
            *_wider_model(w),
        ],  # fmt: skip
        "its weights are not this model's",
        folder="resume-other",
        prepare=[],
        damage=_stopped_before_its_end,
    ),
    Case(
        "a full disk (file-size limit) during the first checkpoint",
        lambda w: [],
        "while saving",
        file_size_limit=lambda w: (w.model / "model.safetensors").stat().st_size * 3 // 2,  # not the optimizer's
    ),
]
CASES += OWNED_FOLDER_CASES

MESSAGE_CASES = [
    Case("--fp16 on a machine without a GPU", lambda w: ["--fp16", "true"], "--fp16 needs a GPU"),
    Case(
        "--deepspeed file that is not valid JSON",
        lambda w: ["--deepspeed", w.text_file("ds.json", b'{"zero_optimization": {"stage": 2,}}\n')],
        "ds.json:1: not valid JSON (Expecting property name",
    ),
    Case("--deepspeed file that does not exist", lambda w: ["--deepspeed", "no_such_ds.json"], "no such file"),
    Case(
        "a CSV sentence that opens a quote and never closes it",
        lambda w: ["--train_file", w.text_file("stray.csv", b'text\n"Hi, she said\nsecond\nthird\n')],
        "stray.csv:2: a quoted field is never closed",
    ),
    Case(
        "a CSV with text after a closing quote",
        lambda w: ["--train_file", w.text_file("after.csv", b'text\nfirst\n"Hi," she said\n')],
        "after.csv:3: text after the closing quote",
    ),
    Case(
        "a CSV header naming a column twice",
        lambda w: ["--train_file", w.text_file("dup.csv", b"text,text\na,b\nc,d\n")],
        "dup.csv:1: column 'text' is named twice",
    ),
    Case(
        "a TSV row with a tab inside a field",
        lambda w: ["--train_file", w.text_file("wide.tsv", b"text\tlabel\na\tb\tc\nd\te\n")],
        "wide.tsv:2: 3 fields, but the header names 2",
    ),
    Case(
        "a JSON Lines file with a syntax error",
        lambda w: ["--train_file", w.text_file("bad.jsonl", b'{"text": "a"}\n{"text": "b" "x": 1}\n')],
        "bad.jsonl:2: not valid JSON",
    ),
    Case(
        "a JSON Lines file of strings, not objects",
        lambda w: ["--train_file", w.text_file("strings.jsonl", b'"a"\n"b"\n')],
        "strings.jsonl:1: a JSON string, not an object",
    ),
    Case(
        "a .parquet file that is text",
        lambda w: ["--train_file", w.text_file("text.parquet", b"one sentence\nanother\n")],
        "text.parquet: not a valid parquet file",
    ),
    Case(
        "an empty .jsonl file",
        lambda w: ["--train_file", w.text_file("empty.jsonl", b"")],
        "empty.jsonl: no sentences",
    ),
]
CASES += MESSAGE_CASES


def _sts_pairs(w: Workspace, name: str = "dev_pairs.csv", constant: bool = False) -> str:
    """A small valid STS file of the workspace's sentences (a score that varies, unless `constant`)."""
    sentences = w.corpus.read_text(encoding="utf-8").splitlines()[:24]
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["sentence1", "sentence2", "score"])
    for i, pair in enumerate(zip(sentences[::2], sentences[1::2])):
        writer.writerow([*pair, 1.0 if constant else i % 5])
    return w.text_file(name, text.getvalue().encode())


def _evaluate(folder: str, *flags: str) -> Callable[[Workspace], list[str]]:
    """hncse-evaluate of the case's output folder `folder` on a small STS file, its results beside it."""
    return lambda w: [str(w.root / folder), "--sts_files", _sts_pairs(w), "--output_json",
                      str(w.root / f"{folder}.json"), *flags]  # fmt: skip


def _edit_json(relative: str, edit: Callable[[dict | list], dict | list]) -> Callable[[Path], None]:
    def damage(output_dir: Path) -> None:
        path = output_dir / relative
        path.write_text(json.dumps(edit(json.loads(path.read_text(encoding="utf-8")))), encoding="utf-8")

    return damage


def _pooling_to_mean(config: dict) -> dict:
    return {k: k == "pooling_mode_mean_tokens" if k.startswith("pooling_mode_") else v for k, v in config.items()}


def _dense_added(output_dir: Path) -> None:
    """A Dense module added after the Pooling (sentence-transformers' format), as an edit by hand would."""
    import torch
    from safetensors.torch import save_file

    width = json.loads((output_dir / "config.json").read_text(encoding="utf-8"))["hidden_size"]
    (output_dir / "9_Dense").mkdir()
    (output_dir / "9_Dense" / "config.json").write_text(json.dumps({
        "in_features": width, "out_features": 8, "bias": True,
        "activation_function": "torch.nn.modules.linear.Identity"}), encoding="utf-8")  # fmt: skip
    save_file({"linear.weight": torch.zeros(8, width), "linear.bias": torch.zeros(8)},
              str(output_dir / "9_Dense" / "model.safetensors"))  # fmt: skip
    modules = json.loads((output_dir / "modules.json").read_text(encoding="utf-8"))
    after_pooling = 1 + max(i for i, m in enumerate(modules) if m["type"].endswith("Pooling"))
    modules.insert(after_pooling, {"idx": 9, "name": "9", "path": "9_Dense",
                                   "type": "sentence_transformers.models.Dense"})  # fmt: skip
    (output_dir / "modules.json").write_text(json.dumps(modules), encoding="utf-8")


# The other tools, on a folder a run left (or none): hncse-evaluate and hncse-plot keep the same one-line discipline.
TOOL_CASES = [
    Case(
        "hncse-evaluate of a folder that does not exist",
        lambda w: [str(w.root / "no_such_run"), "--sts_files", _sts_pairs(w), "--output_json", str(w.root / "e.json")],
        "model: no such folder:",
        tool="hncse-evaluate",
    ),
    Case(
        "hncse-evaluate of a run whose 1_Pooling/config.json was edited to mean pooling",
        _evaluate("eval-pooling-edited"),
        "1_Pooling/config.json says mean pooling but hncse_config.json says",
        folder="eval-pooling-edited",
        prepare=[],
        damage=_edit_json("1_Pooling/config.json", _pooling_to_mean),
        tool="hncse-evaluate",
    ),
    Case(
        "hncse-evaluate of a run with a Dense module added to modules.json",
        _evaluate("eval-dense-added"),
        "modules.json lists Transformer → Pooling → Dense but hncse_config.json",
        folder="eval-dense-added",
        prepare=[],
        damage=_dense_added,
        tool="hncse-evaluate",
    ),
    Case(
        "hncse-evaluate of a run whose modules.json is cut short",
        _evaluate("eval-modules-cut"),
        "modules.json",
        folder="eval-modules-cut",
        prepare=[],
        damage=_cut_in_half("modules.json"),
        tool="hncse-evaluate",
    ),
    Case(
        "hncse-evaluate --output_json below a file",
        lambda w: [
            str(w.model),
            "--sts_files",
            _sts_pairs(w),
            "--output_json",
            _below_a_file(w, "results.json"),
        ],  # fmt: skip
        "--output_json",
        tool="hncse-evaluate",
    ),
    Case(
        "hncse-evaluate --device cuda on a machine without a GPU",
        lambda w: [
            str(w.model),
            "--sts_files",
            _sts_pairs(w),
            "--output_json",
            str(w.root / "e.json"),
            "--device",
            "cuda",
        ],  # fmt: skip
        "--device cuda: no CUDA device here",
        tool="hncse-evaluate",
    ),
    Case(
        "hncse-evaluate of an STS file whose scores are all equal",
        lambda w: [
            str(w.model),
            "--sts_files",
            _sts_pairs(w, "constant.csv", constant=True),
            "--output_json",
            str(w.root / "e.json"),
        ],  # fmt: skip
        "Spearman is undefined for a constant score",
        tool="hncse-evaluate",
    ),
    Case(
        "hncse-evaluate --mteb of a task MTEB does not have",
        lambda w: [str(w.model), "--mteb", "NoSuchTask", "--output_json", str(w.root / "e.json")],
        "NoSuchTask",
        tool="hncse-evaluate",
    ),
    Case(
        "hncse-plot of a folder that does not exist",
        lambda w: [str(w.root / "no_such_run")],
        "no_such_run",
        tool="hncse-plot",
    ),
    Case(
        "hncse-plot of a run whose trainer_state.json is cut short",
        lambda w: [str(w.root / "plot-state-cut"), "-o", str(w.root / "plot-state-cut.png")],
        "trainer_state.json",
        folder="plot-state-cut",
        prepare=[],
        damage=_cut_in_half("trainer_state.json"),
        tool="hncse-plot",
    ),
    Case(
        "hncse-plot of a trainer_state.json without log_history",
        lambda w: [str(w.root / "plot-no-history"), "-o", str(w.root / "plot-no-history.png")],
        "log_history",
        folder="plot-no-history",
        prepare=[],
        damage=_edit_json("trainer_state.json", lambda state: {k: v for k, v in state.items() if k != "log_history"}),
        tool="hncse-plot",
    ),
    Case(
        "hncse-plot -o below a file",
        lambda w: [str(w.root / "plot-unwritable"), "-o", _below_a_file(w, "c.png")],
        "a_file.txt",
        folder="plot-unwritable",
        prepare=[],
        tool="hncse-plot",
    ),
]
CASES += TOOL_CASES


def _wider_model(w: Workspace) -> list[str]:
    """The workspace's model with twice the hidden size (random weights, same tokenizer)."""
    from transformers import AutoConfig, AutoModel

    folder = w.root / "wider_model"
    if not folder.exists():
        shutil.copytree(w.model, folder)
        config = AutoConfig.from_pretrained(str(w.model))
        config.hidden_size, config.intermediate_size = config.hidden_size * 2, config.intermediate_size * 2
        AutoModel.from_config(config).save_pretrained(str(folder))
    return ["--model_name_or_path", str(folder)]


def snapshot(folder: Path) -> dict[str, str]:
    """Relative path → size and SHA-1 of every file under `folder`."""
    if not folder.exists():
        return {}
    out = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        out[str(path.relative_to(folder))] = f"{path.stat().st_size}:{hashlib.sha1(path.read_bytes()).hexdigest()}"
    return out


def cli_env(env: dict[str, str]) -> dict[str, str]:
    """The environment every case's command runs in, plus the case's own."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", **env}


def run_cli(
    argv: list[str], env: dict[str, str], file_size_limit: int | None = None, tool: str = "run_hncse.py"
) -> subprocess.CompletedProcess:
    def limit_file_size() -> None:  # in the child, before it starts: a disk that fills up at that size
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    return subprocess.run(
        [sys.executable, *TOOLS[tool], *argv], cwd=REPO, env=cli_env(env), capture_output=True, text=True,
        preexec_fn=limit_file_size if file_size_limit is not None else None,
    )  # fmt: skip


def case_folder(case: Case, root: Path, number: int) -> Path:
    """Where a case runs: the folder its arguments name, else case<number>."""
    return root / (case.folder or f"case{number:02d}")


def message_of(case: Case, stderr: str) -> str:
    """The line the user reads: the error line, or for a case that goes on, the logged warning."""
    lines = stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith(case.error_prefix)]
    if errors:
        return errors[-1]
    found = [line for line in lines if case.expect in line]
    return re.sub(r"^\S+ \S+ (WARNING|INFO) \S+: ", "", found[-1]) if found else (lines[-1] if lines else "")


def run_case(case: Case, workspace: Workspace, output_dir: Path, warm: WarmProcess | None = None) -> Outcome:
    """`warm`: run the commands in children of that process (tests.warm_processes: no import time), except those
    of a case with its own environment, which is read at import."""

    def run(argv: list[str], limit: int | None = None, tool: str = "run_hncse.py") -> subprocess.CompletedProcess:
        if warm is not None and not case.env:
            return warm.run(tool, argv, limit)
        return run_cli(argv, case.env, limit, tool)

    if case.prepare is not None:
        earlier = run([*workspace.base_argv, "--output_dir", str(output_dir), *case.prepare])
        if earlier.returncode != 0:
            raise RuntimeError(f"{case.name}: preparing the earlier run failed:\n{earlier.stderr[-2000:]}")
    if case.damage is not None:
        case.damage(output_dir)
    before = snapshot(output_dir)
    start = time.perf_counter()
    limit = case.file_size_limit(workspace) if case.file_size_limit is not None else None
    argv = case.argv(workspace)
    if case.tool == "run_hncse.py":
        argv = [*workspace.base_argv, "--output_dir", str(output_dir), *argv]
    proc = run(argv, limit, case.tool)
    return Outcome(
        exit_code=proc.returncode,
        message=message_of(case, proc.stderr),
        traceback="Traceback (most recent call last)" in proc.stderr,
        stderr=proc.stderr,
        before=before,
        after=snapshot(output_dir),
        seconds=time.perf_counter() - start,
    )


def describe_disk(outcome: Outcome, output_dir: Path) -> str:
    """What the output directory holds after the case, next to what it held before."""
    if not outcome.after:
        return "nothing (no output directory)"
    top = sorted({path.split("/")[0] for path in outcome.after})
    checkpoints = [f"`{name}/`" for name in top if name.startswith("checkpoint-")]
    listing = ", ".join(checkpoints)
    if "model.safetensors" in top:
        listing = f"the trained model folder ({len(top) - len(checkpoints)} files), " + listing
    if not outcome.before:
        return listing
    if outcome.exit_code == 0 and outcome.before == outcome.after:
        return f"untouched: {listing}"
    if outcome.exit_code == 0:
        return f"the run went on from the earlier one: {listing}"
    return f"{'untouched' if outcome.before == outcome.after else 'CHANGED'}: {listing}"
