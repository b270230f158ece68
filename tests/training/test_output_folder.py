"""What a run may do to an output folder that holds earlier work: nothing before every check has passed, nothing
to a damaged checkpoint but pass it over, nothing at all when the run is already finished."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file
from tiny_run import base_argv, crash_after_step

import run_hncse
from bench.robustness import snapshot
from hncse.errors import ConfigError
from hncse.training.checkpoints import check_output_dir_writable, damaged_files, last_complete_checkpoint


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
    run_hncse.main(argv)
    earlier = snapshot(out)
    # A failure inside Trainer.train before the first save: the earlier run is kept as it was.
    with crash_after_step(0), pytest.raises(RuntimeError, match="simulated crash"):
        run_hncse.main([*argv, "--overwrite_output_dir", "true", "--learning_rate", "1e-4"])
    assert snapshot(out) == earlier
    # Once the new run saves, the earlier run's checkpoints are gone and only the new run's remain.
    run_hncse.main([*argv, "--overwrite_output_dir", "true", "--learning_rate", "1e-4", "--max_steps", "2"])
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

    import run_hncse

    token = "hf_NotARealTokenButAUniqueOne42"
    out = tmp_path / "run"
    run_hncse.main([*base_argv(tiny_model_dir, corpus_file, senteval_dir, out), "--max_steps", "2",
                    "--hub_token", token, "--logging_strategy", "steps"])  # fmt: skip
    printed = capfd.readouterr()
    assert token not in printed.out and token not in printed.err
    files = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.name == "training_args.bin" for p in files) and any("checkpoint-" in str(p) for p in files)
    leaked = [str(p) for p in files if token.encode() in p.read_bytes()]
    assert leaked == []
    saved = torch.load(out / "training_args.bin", weights_only=False)
    assert saved.hub_token is None and saved.learning_rate == 1e-3  # the rest as it was
