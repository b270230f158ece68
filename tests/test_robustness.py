"""Every bad input of docs/robustness.md, on the command line with a tiny model: one line, the right exit status,
and the earlier work in the output directory untouched. The cases are tests/robustness_cases.py's;
`python -m bench.robustness` runs them on the quickstart setup and writes the doc."""

import json
import queue
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from safetensors.torch import load_file

from tests.robustness_cases import CASES, Workspace, case_folder, cli_env, run_case
from tests.warm_processes import WarmProcess

# The cases the other tests of this file read.
OTHER_TESTS_CASES = (
    "loss or weights become NaN/inf (learning rate 1e38)",
    "a line longer than --max_seq_length",
    "the same command again after a stop between the last step and the final folder",
)


@pytest.fixture(scope="module")
def outcomes(tiny_model_dir, corpus_file, senteval_dir, tmp_path_factory, request):
    root = tmp_path_factory.mktemp("robustness")
    base = [
        "--model_name_or_path", str(tiny_model_dir), "--train_file", str(corpus_file),
        "--senteval_dir", str(senteval_dir), "--per_device_train_batch_size", "8", "--max_seq_length", "16",
        "--max_steps", "2", "--save_steps", "1", "--logging_steps", "1", "--eval_strategy", "no",
        "--load_best_model_at_end", "false", "--dataloader_pin_memory", "false", "--disable_tqdm", "true",
        "--resume_state_steps", "1",
    ]  # fmt: skip
    workspace = Workspace(root=root, base_argv=base, corpus=corpus_file, model=tiny_model_dir)
    folders = {case.name: case_folder(case, root, number) for number, case in enumerate(CASES)}
    # Only the cases the session runs (`-k` selects some), else all; each in a process of its own.
    selected = {getattr(item.callspec.params.get("case"), "name", None) for item in request.session.items
                if hasattr(item, "callspec")}  # fmt: skip
    wanted = [case for case in CASES if case.name in selected] or list(CASES)
    wanted += [case for case in CASES if case.name in OTHER_TESTS_CASES and case not in wanted]
    # Two at a time, each case's commands in processes forked from a warm one (tests.warm_processes).
    servers = queue.SimpleQueue()
    for _ in range(2):
        servers.put(WarmProcess(cli_env({})))

    def run(case):
        warm = servers.get()
        try:
            return run_case(case, workspace, folders[case.name], warm)
        finally:
            servers.put(warm)

    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = {case.name: pool.submit(run, case) for case in wanted}
        return {name: (future.result(), folders[name]) for name, future in futures.items()}
    finally:
        while not servers.empty():
            servers.get().close()


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_gets_one_line_and_keeps_earlier_work(outcomes, case):
    outcome, output_dir = outcomes[case.name]
    assert outcome.exit_code == case.exit_code, outcome.message
    assert not outcome.traceback
    assert case.expect in outcome.message, outcome.message
    if case.unchanged:
        assert outcome.before == outcome.after  # names, sizes and hashes
    if case.exit_code != 0:
        assert outcome.message.startswith(case.error_prefix) and "\n" not in outcome.message
        assert outcome.before == outcome.after if case.prepare is not None else outcome.kept_earlier_work
        if case.prepare is None and case.damage is None and case.file_size_limit is None and "NaN" not in case.name:
            assert not output_dir.exists()  # refused before anything was written


def test_divergence_leaves_only_finite_checkpoints(outcomes):
    """With lr 1e38 the first update overflows the weights while its loss was finite: that checkpoint is not
    written (the check at saving), and the run stops at once."""
    outcome, output_dir = outcomes["loss or weights become NaN/inf (learning rate 1e38)"]
    assert "step 1" in outcome.message and "Last checkpoint: none" in outcome.message
    for checkpoint in output_dir.glob("checkpoint-*"):
        weights = load_file(checkpoint / "model.safetensors")
        assert all(torch.isfinite(t).all() for t in weights.values()), checkpoint


def test_long_lines_are_counted_right_and_reported_once(outcomes, tiny_model_dir):
    from transformers import AutoTokenizer

    outcome, output_dir = outcomes["a line longer than --max_seq_length"]
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    lines = (output_dir.parent / "long_line.txt").read_text(encoding="utf-8").splitlines()
    lengths = [len(tokenizer(line)["input_ids"]) for line in lines]  # one at a time, untruncated
    longer = sum(n > 16 for n in lengths)
    assert outcome.message.startswith(f"{longer} of {len(lines)} training sentences")
    assert f"the longest has {max(lengths)} tokens (sentence {lengths.index(max(lengths)) + 1}:" in outcome.message
    assert outcome.stderr.count("were truncated") == 1
    assert (output_dir / "model.safetensors").is_file()  # the run went on


def test_a_run_stopped_after_its_last_step_is_finished_without_another_step(outcomes):
    outcome, output_dir = outcomes["the same command again after a stop between the last step and the final folder"]
    state = json.loads((output_dir / "trainer_state.json").read_text())
    assert state["global_step"] == 2 and (output_dir / "model.safetensors").is_file()
    final, last = (
        load_file(output_dir / "model.safetensors"),
        load_file(output_dir / "checkpoint-2" / "model.safetensors"),
    )
    assert all(torch.equal(final[k], last[k]) for k in last)  # the last step's weights, no step at lr 0 after it
