"""--push_to_hub against a local stand-in of the Hub's HTTP API: what arrives, when, and with which card."""

import os
import subprocess
import sys

import pytest
import torch
import transformers
import yaml
from hub_standin import HubStandIn, hub_env
from tiny_run import REPO, base_argv

import hncse.train
from hncse.modeling import SentenceEncoder
from hncse.training import HNCSETrainer
from hncse.training.checkpoints import MANIFEST_NAME
from hncse.training.output_folder import LEDGER_NAME

ST_FILES = {"modules.json", "1_Pooling/config.json", "sentence_bert_config.json", "config.json", "model.safetensors"}


@pytest.fixture()
def hub():
    with HubStandIn() as standin:
        yield standin


def test_push_sends_the_loadable_folder_with_weights_card_and_results_once(
    tiny_model_dir, corpus_file, senteval_small, tmp_path, hub
):
    out = tmp_path / "run"
    argv = base_argv(tiny_model_dir, corpus_file, senteval_small, out) + [
        "--eval_tasks", "stsb", "--do_predict", "true", "--predict_task_set", "sts",
        "--push_to_hub", "true", "--hub_model_id", "standin-user/tiny-hncse", "--hub_strategy", "checkpoint",
        "--hub_private_repo", "true",
    ]  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "run_hncse.py", *argv],
        cwd=REPO, env={**os.environ, **hub_env(hub), "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    repo = hub.repos["standin-user/tiny-hncse"]
    assert repo["private"]

    # One end-of-training push (no second "Model save" push of the same weights); checkpoints pushed on the way.
    assert repo["commits"].count("End of training") == 1 and "Model save" not in repo["commits"]
    assert repo["commits"][-1] == "End of training"
    progress = [i for i, message in enumerate(repo["commits"]) if message.startswith("Training in progress, step")]
    assert progress, repo["commits"]
    # Every push during training already holds a loadable folder: weights and sentence-transformers modules.
    for i in progress:
        assert ST_FILES | {"README.md"} <= set(repo["trees"][i]), repo["trees"][i]
    # hub_strategy checkpoint: each checkpoint pushed to last-checkpoint/ is resumable, whatever
    # --resume_state_steps says (a save that is neither a new best nor due for the resume state is not pushed).
    resumable = [i for i, message in enumerate(repo["commits"]) if message.endswith(", checkpoint")]
    assert resumable and all("last-checkpoint/optimizer.pt" in repo["trees"][i] for i in resumable)

    # The final push is the local output folder, byte for byte, checkpoints left out; resume state in
    # last-checkpoint/ (hub_strategy checkpoint). The folder's ledger of what hncse wrote there stays local: it
    # names this machine's files, and the Trainer pushes no "_*" name.
    local = {
        path.relative_to(out).as_posix(): path.read_bytes()
        for path in out.rglob("*")
        if path.is_file() and not path.relative_to(out).parts[0].startswith("checkpoint-")
    }
    assert local.pop(LEDGER_NAME)
    pushed = {path: data for path, data in repo["files"].items() if not path.startswith("last-checkpoint/")}
    assert pushed.keys() == local.keys() and all(pushed[path] == local[path] for path in local)
    assert not any(path.endswith(LEDGER_NAME) for path in repo["files"])
    assert ST_FILES <= local.keys() and "senteval_results.json" in local
    for name in ("trainer_state.json", "optimizer.pt", "loss_state.pt", "run_config.json", "model.safetensors"):
        assert f"last-checkpoint/{name}" in repo["files"], name

    card = repo["files"]["README.md"].decode()
    metadata = yaml.safe_load(card.split("---")[1])
    datasets = {r["dataset"]["name"] for r in metadata["model-index"][0]["results"]}
    assert {"STS-B validation", "STS12 test", "SICK-R test"} <= datasets
    assert metadata["model-index"][0]["name"] == "tiny-hncse"
    assert 'SentenceTransformer("standin-user/tiny-hncse")' in card and "## SentEval test results" in card

    # What was pushed loads in sentence-transformers and gives the local model's embeddings.
    from sentence_transformers import SentenceTransformer

    downloaded = tmp_path / "downloaded"
    for path, data in pushed.items():
        (downloaded / path).parent.mkdir(parents=True, exist_ok=True)
        (downloaded / path).write_bytes(data)
    sentences = ["a man is playing a guitar .", "two dogs run"]
    theirs = SentenceTransformer(str(downloaded), device="cpu").encode(sentences, convert_to_tensor=True)
    torch.testing.assert_close(
        theirs, SentenceEncoder.from_pretrained(str(out)).encode(sentences), atol=1e-5, rtol=1e-4
    )


def test_a_checkpoint_is_pushed_once_every_process_has_written_its_part(
    tiny_model_dir, corpus_file, senteval_dir, tmp_path, monkeypatch
):
    """The Trainer asks for the push inside its own save, before the other processes have written their part (on
    2 processes under DeepSpeed the main process copied a file another was still writing): the push waits for the
    checkpoint's manifest, which is written once every process is done. The Hub itself is left out here (the
    repository, the uploads): the other tests of this file push to the stand-in."""
    whole = []
    monkeypatch.setattr(HNCSETrainer, "init_hf_repo", lambda self, *args, **kwargs: None)
    monkeypatch.setattr(
        transformers.Trainer,
        "_push_from_checkpoint",
        lambda self, folder: whole.append(os.path.isfile(os.path.join(folder, MANIFEST_NAME))),
    )
    # The final push saves output_dir as the Trainer's own does, and uploads nothing.
    monkeypatch.setattr(
        transformers.Trainer, "push_to_hub", lambda self, *args, **kwargs: self.save_model(_internal_call=True)
    )
    hncse.train.main(
        base_argv(tiny_model_dir, corpus_file, senteval_dir, tmp_path / "run")
        + ["--push_to_hub", "true", "--hub_model_id", "standin-user/whole", "--hub_strategy", "checkpoint"]
    )
    assert whole and all(whole), whole


def test_a_failed_final_push_says_so_in_one_line_and_keeps_the_saved_folder(
    tiny_model_dir, corpus_file, senteval_dir, tmp_path
):
    out = tmp_path / "run"
    argv = base_argv(tiny_model_dir, corpus_file, senteval_dir, out) + [
        "--push_to_hub", "true", "--hub_model_id", "standin-user/refused", "--hub_strategy", "end",
    ]  # fmt: skip
    with HubStandIn(refuse_commit="End of training") as hub:
        proc = subprocess.run(
            [sys.executable, "run_hncse.py", *argv],
            cwd=REPO, env={**os.environ, **hub_env(hub), "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
        )  # fmt: skip
        assert hub.repos["standin-user/refused"]["commits"] == []
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    message = proc.stderr.strip().splitlines()[-1]
    assert message.startswith(f"run_hncse.py: error: the model is saved in {out}, but pushing it to")
    assert f"hf upload standin-user/refused {out} --exclude 'checkpoint-*'" in message
    for name in ("model.safetensors", "modules.json", "README.md", "trainer_state.json"):
        assert (out / name).is_file(), name
