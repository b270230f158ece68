"""What a run may do to an output folder that holds earlier work: nothing before every check has passed, nothing
to a damaged checkpoint but pass it over, nothing at all when the run is already finished."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file
from tiny_run import base_argv, crash_after_step

import hncse.train
from hncse.errors import ConfigError
from hncse.training.checkpoints import (
    check_output_dir_writable,
    damaged_files,
    last_complete_checkpoint,
    missing_checkpoint_files,
)
from hncse.training.output_folder import LEDGER_NAME, OutputFolder
from tests.robustness_cases import snapshot


def test_files_cut_short_are_found_from_their_headers(tmp_path):
    save_file({"w": torch.ones(64)}, tmp_path / "model.safetensors")
    torch.save({"step": 1}, tmp_path / "optimizer.pt")
    assert damaged_files(str(tmp_path)) == []
    for name in ("model.safetensors", "optimizer.pt"):
        whole = (tmp_path / name).read_bytes()
        (tmp_path / name).write_bytes(whole[:-1])
        assert damaged_files(str(tmp_path)) == [str(tmp_path / name)]
        (tmp_path / name).write_bytes(b"")
        assert damaged_files(str(tmp_path)) == [str(tmp_path / name)]
        (tmp_path / name).write_bytes(whole)


def test_an_output_dir_that_cannot_be_written_is_refused_before_anything_is_made(tmp_path):
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        check_output_dir_writable(str(tmp_path / "a_file" / "run" / "deeper"))
    check_output_dir_writable(str(tmp_path / "new" / "run"))
    assert not (tmp_path / "new").exists()


def test_overwrite_deletes_the_earlier_run_only_once_the_new_one_saves(
    tiny_model_dir, corpus_file, senteval_dir, tmp_path
):
    out = tmp_path / "run"
    argv = base_argv(tiny_model_dir, corpus_file, senteval_dir, out)
    argv += ["--eval_strategy", "no", "--load_best_model_at_end", "false"]
    hncse.train.main(argv)
    earlier = snapshot(out)
    # A failure inside Trainer.train before the first save: the earlier run is kept as it was.
    with crash_after_step(0), pytest.raises(RuntimeError, match="simulated crash"):
        hncse.train.main([*argv, "--overwrite_output_dir", "true", "--learning_rate", "1e-4"])
    assert snapshot(out) == earlier
    # Once the new run saves, the earlier run's checkpoints are gone and only the new run's remain.
    hncse.train.main([*argv, "--overwrite_output_dir", "true", "--learning_rate", "1e-4", "--max_steps", "2"])
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    assert last_complete_checkpoint(str(out)) == str(out / "checkpoint-2")
    assert snapshot(out) != earlier


def test_a_hub_token_reaches_neither_the_folder_nor_the_logs(
    tiny_model_dir, corpus_file, senteval_dir, tmp_path, capfd
):
    """--hub_token is used, never kept: training_args.bin (the output folder's and every checkpoint's), run_config,
    the card, trainer_state and the printed logs hold no trace of it."""
    import torch
    from tiny_run import base_argv

    import hncse.train

    token = "hf_NotARealTokenButAUniqueOne42"
    out = tmp_path / "run"
    hncse.train.main([*base_argv(tiny_model_dir, corpus_file, senteval_dir, out), "--max_steps", "2",
                    "--hub_token", token, "--logging_strategy", "steps"])  # fmt: skip
    printed = capfd.readouterr()
    assert token not in printed.out and token not in printed.err
    files = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.name == "training_args.bin" for p in files) and any("checkpoint-" in str(p) for p in files)
    leaked = [str(p) for p in files if token.encode() in p.read_bytes()]
    assert leaked == []
    saved = torch.load(out / "training_args.bin", weights_only=False)
    assert saved.hub_token is None and saved.learning_rate == 1e-3  # the rest as it was


# ---- the save protocol and the folder the run owns (issue: nothing lost, nothing silently wrong) ----------------


def quick_argv(tiny_model_dir, corpus_file, senteval_dir, out, *extra):
    return [
        *base_argv(tiny_model_dir, corpus_file, senteval_dir, out), "--eval_strategy", "no",
        "--load_best_model_at_end", "false", "--max_steps", "2", "--resume_state_steps", "1", *extra,
    ]  # fmt: skip


def weights(folder):
    return load_file(folder / "model.safetensors")


def same_weights(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_kill_during_the_final_save_is_finished_by_the_same_command(
    tiny_model_dir, corpus_file, senteval_dir, tmp_path, monkeypatch
):
    """The final weights written, the run facts not yet: the same command again finishes the run from its last
    checkpoint (no step), instead of refusing the folder as another's and offering to delete checkpoint-2."""
    import hncse.training.trainer as trainer_module

    reference = tmp_path / "uninterrupted"
    hncse.train.main(quick_argv(tiny_model_dir, corpus_file, senteval_dir, reference))
    out = tmp_path / "run"
    original = trainer_module.save_training_state

    def killed_in_the_final_save(folder, *args, **kwargs):
        if "checkpoint-" not in folder:
            raise KeyboardInterrupt  # as a kill would stop it: after model.safetensors, before run_config.json
        return original(folder, *args, **kwargs)

    monkeypatch.setattr(trainer_module, "save_training_state", killed_in_the_final_save)
    with pytest.raises(KeyboardInterrupt):
        hncse.train.main(quick_argv(tiny_model_dir, corpus_file, senteval_dir, out))
    monkeypatch.setattr(trainer_module, "save_training_state", original)
    assert (out / "model.safetensors").is_file() and not (out / "run_config.json").exists()
    checkpoint = snapshot(out / "checkpoint-2")
    result = hncse.train.main(quick_argv(tiny_model_dir, corpus_file, senteval_dir, out))
    assert "finished" not in result and snapshot(out / "checkpoint-2") == checkpoint
    assert same_weights(weights(out), weights(reference)) and (out / "run_config.json").is_file()
    assert json.loads((out / LEDGER_NAME).read_text())["finished"] == {"step": 2}


def test_a_finished_run_is_byte_identical_after_any_later_command(tiny_model_dir, corpus_file, senteval_dir, tmp_path):
    out = tmp_path / "run"
    argv = quick_argv(tiny_model_dir, corpus_file, senteval_dir, out)
    hncse.train.main(argv)
    finished = snapshot(out)
    assert hncse.train.main(argv)["finished"] is True  # the same command: nothing to do
    for extra in (
        ["--max_steps", "4"],  # would train past it and replace its final folder
        ["--max_steps", "1"],
        ["--learning_rate", "1e-4"],
        ["--resume_from_checkpoint", str(out / "checkpoint-1")],
    ):
        with pytest.raises(ConfigError, match="holds a finished run \\(step 2\\)") as refused:
            hncse.train.main([*argv, *extra])
        assert "\n" not in str(refused.value) and snapshot(out) == finished, extra
    # Training it further goes into another folder, from its last checkpoint.
    further = tmp_path / "further"
    hncse.train.main([*quick_argv(tiny_model_dir, corpus_file, senteval_dir, further), "--max_steps", "3",
                    "--resume_from_checkpoint", str(out / "checkpoint-2")])  # fmt: skip
    assert json.loads((further / "trainer_state.json").read_text())["global_step"] == 3
    assert snapshot(out) == finished


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_folder_of_someone_elses_files_is_refused(tiny_model_dir, corpus_file, senteval_dir, tmp_path, overwrite):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "README.md").write_text("my notes\n")
    (out / "config.json").write_text("{}\n")
    (out / "pytorch_model.bin").write_bytes(b"weights")
    before = snapshot(out)
    argv = quick_argv(tiny_model_dir, corpus_file, senteval_dir, out, "--overwrite_output_dir", str(overwrite).lower())
    with pytest.raises(ConfigError, match="holds files that no hncse run wrote there") as refused:
        hncse.train.main(argv)
    assert "README.md" in str(refused.value) and "pytorch_model.bin" in str(refused.value)
    assert snapshot(out) == before and sorted(p.name for p in out.iterdir()) == sorted(before)


def test_overwrite_deletes_only_what_hncse_wrote(tiny_model_dir, corpus_file, senteval_dir, tmp_path):
    """The earlier run's files (its checkpoints, a test-set file of a run with --do_predict, a second checkpoint
    folder the new run will not write) go; the ledger's entries are deleted as what they are now (a link is
    unlinked, not followed), and nothing else is touched."""
    out = tmp_path / "run"
    argv = quick_argv(tiny_model_dir, corpus_file, senteval_dir, out)
    hncse.train.main([*argv, "--max_steps", "3"])
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep\n")
    shutil.rmtree(out / "checkpoint-3")
    (out / "checkpoint-3").symlink_to(outside)  # a name hncse wrote, now a link to someone's folder
    hncse.train.main([*argv, "--overwrite_output_dir", "true", "--learning_rate", "1e-4"])
    assert (outside / "keep.txt").read_text() == "keep\n"
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    assert json.loads((out / "run_config.json").read_text())["learning_rate"] == 1e-4
    ledger = OutputFolder(str(out))
    assert ledger.foreign() == [] and ledger.finished == {"step": 2}


def test_overwrite_folder_entries_of_every_kind(tmp_path):
    folder = OutputFolder(str(tmp_path))
    folder.claim("a_file", "a_folder", "a_link", "gone")
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "a_folder").mkdir()
    (tmp_path / "a_folder" / "inner").write_text("x")
    (tmp_path / "target").write_text("kept")
    (tmp_path / "a_link").symlink_to(tmp_path / "target")
    assert folder.foreign() == []  # while the claim is open, all is the run's
    folder.sweep()
    assert folder.foreign() == [] and "target" in folder.written
    folder._ledger["written"].remove("target")  # someone else's file, as far as the ledger knows
    assert sorted(folder.remove_written()) == ["a_file", "a_folder", "a_link"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [LEDGER_NAME, "target"]
    assert (tmp_path / "target").read_text() == "kept"


def test_a_newest_checkpoint_missing_a_resume_file_is_passed_over(tiny_model_dir, corpus_file, senteval_dir, tmp_path):
    """HNM's loss_state.pt deleted from the newest checkpoint: resuming it would restart the pair sampler, so the
    run resumes the checkpoint before it, and ends exactly as the uninterrupted run."""
    hnm = ["--objective", "hnm", "--max_steps", "4"]
    reference = tmp_path / "uninterrupted"
    hncse.train.main(quick_argv(tiny_model_dir, corpus_file, senteval_dir, reference, *hnm))
    out = tmp_path / "run"
    argv = quick_argv(tiny_model_dir, corpus_file, senteval_dir, out, *hnm)
    with crash_after_step(3), pytest.raises(RuntimeError, match="simulated crash"):
        hncse.train.main(argv)
    (out / "checkpoint-3" / "loss_state.pt").unlink()
    assert "no loss_state.pt" in missing_checkpoint_files(str(out / "checkpoint-3"))
    assert last_complete_checkpoint(str(out)) == str(out / "checkpoint-2")
    with pytest.raises(ConfigError, match="not a complete checkpoint \\(no loss_state.pt"):
        hncse.train.main([*argv, "--resume_from_checkpoint", str(out / "checkpoint-3")])
    hncse.train.main(argv)
    assert same_weights(weights(out), weights(reference))


@pytest.mark.parametrize("name", ["optimizer.pt", "run_config.json", "scheduler.pt", "hncse_checkpoint.json"])
def test_a_checkpoint_without_a_file_it_was_saved_with_is_not_resumed(
    tiny_model_dir, corpus_file, senteval_dir, tmp_path, name
):
    out = tmp_path / "run"
    with crash_after_step(1), pytest.raises(RuntimeError, match="simulated crash"):
        hncse.train.main(quick_argv(tiny_model_dir, corpus_file, senteval_dir, out))
    assert missing_checkpoint_files(str(out / "checkpoint-1")) == []
    (out / "checkpoint-1" / name).unlink()
    assert missing_checkpoint_files(str(out / "checkpoint-1"))
    with pytest.raises(ConfigError, match="is not a complete checkpoint"):
        hncse.train.main(quick_argv(tiny_model_dir, corpus_file, senteval_dir, tmp_path / "other",
                                  "--resume_from_checkpoint", str(out / "checkpoint-1")))  # fmt: skip


def test_a_trainer_state_without_global_step_makes_a_checkpoint_incomplete(
    tiny_model_dir, corpus_file, senteval_dir, tmp_path
):
    out = tmp_path / "run"
    with crash_after_step(1), pytest.raises(RuntimeError, match="simulated crash"):
        hncse.train.main(quick_argv(tiny_model_dir, corpus_file, senteval_dir, out))
    state_path = out / "checkpoint-1" / "trainer_state.json"
    state = json.loads(state_path.read_text())
    del state["global_step"]
    state_path.write_text(json.dumps(state))
    assert any("global_step" in gap for gap in missing_checkpoint_files(str(out / "checkpoint-1")))
    with pytest.raises(ConfigError, match="is not a complete checkpoint"):
        hncse.train.main(quick_argv(tiny_model_dir, corpus_file, senteval_dir, tmp_path / "other",
                                  "--resume_from_checkpoint", str(out / "checkpoint-1")))  # fmt: skip


def test_resuming_with_a_changed_learning_rate_is_refused_not_ignored(
    tiny_model_dir, corpus_file, senteval_dir, tmp_path
):
    """The optimizer and scheduler states restore the checkpoint's learning rate: a new one would be recorded in
    run_config.json and the card but not applied."""
    out = tmp_path / "run"
    argv = quick_argv(tiny_model_dir, corpus_file, senteval_dir, out)
    with crash_after_step(1), pytest.raises(RuntimeError, match="simulated crash"):
        hncse.train.main(argv)
    before = snapshot(out)
    for extra in (["--resume_from_checkpoint", str(out / "checkpoint-1")], []):
        with pytest.raises(ConfigError, match="learning_rate: 0.001 → 0.0001") as refused:
            hncse.train.main([*argv, "--learning_rate", "1e-4", *extra])
        assert "restore" in str(refused.value) and snapshot(out) == before
    # What resuming does not restore applies from the resumed step on, and the run says so.
    hncse.train.main([*argv, "--seed", "7", "--resume_from_checkpoint", str(out / "checkpoint-1")])
    assert json.loads((out / "run_config.json").read_text())["seed"] == 7


def test_resuming_another_architectures_checkpoint_is_one_line(tiny_model_dir, corpus_file, senteval_dir, tmp_path):
    from transformers import AutoConfig, AutoModel

    out = tmp_path / "run"
    with crash_after_step(1), pytest.raises(RuntimeError, match="simulated crash"):
        hncse.train.main(quick_argv(tiny_model_dir, corpus_file, senteval_dir, out))
    wider = tmp_path / "wider"
    shutil.copytree(tiny_model_dir, wider)
    config = AutoConfig.from_pretrained(str(tiny_model_dir))
    config.hidden_size, config.intermediate_size = config.hidden_size * 2, config.intermediate_size * 2
    AutoModel.from_config(config).save_pretrained(str(wider))
    argv = quick_argv(wider, corpus_file, senteval_dir, tmp_path / "other",
                      "--resume_from_checkpoint", str(out / "checkpoint-1"))  # fmt: skip
    with pytest.raises(ConfigError, match="its weights are not this model's") as refused:
        hncse.train.main(argv)
    assert "\n" not in str(refused.value)
