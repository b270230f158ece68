"""Two runs into one folder, and a run stopped with Ctrl-C or SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from tiny_run import REPO, base_argv

from hncse.errors import ConfigError
from hncse.training.checkpoints import is_model_only, last_complete_checkpoint
from hncse.training.output_lock import LOCK_NAME, OutputLock


def test_a_second_run_into_a_folder_in_use_is_refused_and_a_dead_runs_lock_is_taken_over(tmp_path):
    out = tmp_path / "run"
    with OutputLock(str(out)):
        assert (out / LOCK_NAME).is_file()
        with pytest.raises(ConfigError, match=rf"--output_dir {out} is in use by another run \(pid {os.getpid()} on "):
            with OutputLock(str(out)):
                pass
        assert (out / LOCK_NAME).is_file()  # the refused run left the holder's lock alone
    assert not out.exists()  # the folder the lock made, left empty, is removed again

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    out.mkdir()
    with OutputLock(str(out)):
        pass
    (out / LOCK_NAME).write_text(json.dumps({"host": os.uname().nodename, "pid": int(dead.stdout), "since": "-"}))
    with OutputLock(str(out)):  # a run killed with SIGKILL left it: taken over
        assert json.loads((out / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert out.is_dir() and not (out / LOCK_NAME).exists()  # the folder was there before: kept


def test_the_lock_never_hides_the_error_that_ended_the_run_and_an_empty_lock_says_so(tmp_path, monkeypatch):
    out = tmp_path / "run"

    def read_only(path):
        raise PermissionError(13, "Permission denied", path)

    with pytest.raises(RuntimeError, match="the real error"):  # not the lock's PermissionError
        with OutputLock(str(out)):
            monkeypatch.setattr(os, "remove", read_only)  # the folder became read-only mid-run
            raise RuntimeError("the real error")
    monkeypatch.undo()
    (out / LOCK_NAME).write_text("")  # a lock file cut short
    with pytest.raises(ConfigError, match=r"its lock file is empty or damaged, so the run is unknown\); wait"):
        with OutputLock(str(out)):
            pass


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM])
def test_the_first_signal_saves_a_checkpoint_to_resume_and_stops(
    tiny_model_dir, corpus_file, senteval_dir, tmp_path, signal_number
):
    out = tmp_path / "run"

    def argv(max_steps: int) -> list[str]:
        return base_argv(tiny_model_dir, corpus_file, senteval_dir, out) + [
            "--max_steps", str(max_steps), "--save_steps", "1000", "--eval_strategy", "no",
            "--load_best_model_at_end", "false", "--lr_scheduler_type", "constant",
        ]  # fmt: skip

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "run_hncse.py", *argv(2000)], cwd=REPO, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    steps = 0
    for line in proc.stdout:  # the loss of each step is logged: signal once training is under way
        steps += line.startswith("{'loss'")
        if steps == 3:
            break
    proc.send_signal(signal_number)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal_number, stderr[-2000:]
    message = stderr.strip().splitlines()[-1]
    assert message.startswith(f"run_hncse.py: stopped by {signal.Signals(signal_number).name} after step ")
    assert message.endswith("run the same command again to resume from it") and "Traceback" not in stderr
    checkpoint = last_complete_checkpoint(str(out))
    assert checkpoint is not None and not is_model_only(checkpoint) and checkpoint in message
    assert not (out / "model.safetensors").exists()  # no final folder for a run that did not finish
    assert not (out / LOCK_NAME).exists()

    step = int(checkpoint.rsplit("-", 1)[-1])
    resumed = subprocess.run(
        [sys.executable, "run_hncse.py", *argv(step + 2)], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"Resuming from {checkpoint}" in resumed.stderr
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == step + 2


def test_ctrl_c_swallowed_during_start_up_still_stops_the_run(tiny_model_dir, corpus_file, tmp_path, monkeypatch):
    """datasets hashes the tokenising function inside a bare `except:`; a Ctrl-C landing there was swallowed and the
    run trained to the end. Simulated: the interrupt arrives inside such an `except:` while the corpus is tokenised."""
    import os
    import signal

    import hncse.data.pipeline
    import hncse.train

    tokenize = hncse.data.pipeline.tokenize_sentences

    def interrupted_inside_a_bare_except(*args, **kwargs):
        try:
            os.kill(os.getpid(), signal.SIGINT)
        except:  # noqa: E722 - what datasets does
            pass
        return tokenize(*args, **kwargs)

    monkeypatch.setattr(hncse.data.pipeline, "tokenize_sentences", interrupted_inside_a_bare_except)
    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (a background job ignores it)
    out = tmp_path / "run"
    argv = ["--model_name_or_path", str(tiny_model_dir), "--train_file", str(corpus_file), "--output_dir", str(out),
            "--per_device_train_batch_size", "8", "--max_steps", "2", "--eval_strategy", "no",
            "--load_best_model_at_end", "false", "--disable_tqdm", "true",
            "--dataloader_pin_memory", "false"]  # fmt: skip
    try:
        with pytest.raises(KeyboardInterrupt):
            hncse.train.main(argv)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the usual Ctrl-C back
    finally:
        signal.signal(signal.SIGINT, before)
    assert not (out / "model.safetensors").exists() and not list(out.glob("checkpoint-*"))  # nothing trained
