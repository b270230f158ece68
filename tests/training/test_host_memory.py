"""Host memory: the trainer hands the pages the C allocator holds free back after every step and evaluation (the
memory it saves is measured by `python -m bench.performance.host_memory`, not here)."""

from __future__ import annotations

import json
import platform

from tiny_run import base_argv

import hncse.train
import hncse.training.host_memory as host_memory


def test_glibc_has_malloc_trim_and_elsewhere_nothing_is_called():
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert callable(host_memory.find_malloc_trim())
    else:
        assert host_memory.find_malloc_trim() is None


def test_freed_memory_is_released_after_every_step_and_evaluation(
    tiny_model_dir, corpus_file, senteval_dir, tmp_path, monkeypatch
):
    calls = []
    monkeypatch.setattr(host_memory, "MALLOC_TRIM", lambda pad: calls.append(pad) or 1)
    out = tmp_path / "run"
    hncse.train.main(base_argv(tiny_model_dir, corpus_file, senteval_dir, out))  # 3 steps, evaluation each step
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    evaluations = sum("eval_runtime" in entry for entry in history)
    assert evaluations >= 4  # before training and after each step (the final one is not in the state)
    assert len(calls) == 3 + evaluations + 1 and set(calls) == {0}  # steps, evaluations in training, the final one
