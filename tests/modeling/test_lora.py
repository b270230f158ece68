"""LoRA through peft: only the adapters (and the head) train; the merged folder equals peft's own merge and loads
without peft in transformers and sentence-transformers with hncse's vectors; --save_adapter's files load in peft;
a resumed LoRA run repeats the uninterrupted loss curve; checkpointing and the cached step pass gradients to the
adapters; LoRA under DDP and DeepSpeed ZeRO-2/3 on 2 gloo processes."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import pytest
import torch
from launch_output import launch_failure
from safetensors.torch import load_file
from tiny_run import REPO, crash_after_step
from transformers import AutoModel

import hncse.train
from hncse.errors import ConfigError
from hncse.modeling import SentenceEncoder
from hncse.modeling.lora import ADAPTER_DIR, merged_state_dict

peft = pytest.importorskip("peft", reason="needs peft: pip install 'hncse[peft]'")
SENTENCES = ["the city is old", "a man is playing a guitar .", "two dogs run in the park ."]


def lora_encoder(folder, **options):
    torch.manual_seed(0)
    encoder = SentenceEncoder.from_pretrained(str(folder), dropout=0.1)
    encoder.add_lora(4, 8.0, 0.0, **options)
    with torch.no_grad():  # B starts at 0 (the merge would be the base model): make the update count
        for name, param in encoder.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.3)
    return encoder.eval()


@pytest.mark.parametrize("family", ["bert", "llama"])
def test_the_merged_weights_are_peft_s_own_merge(family, tiny_model_dir, decoder_dirs):
    encoder = lora_encoder(tiny_model_dir if family == "bert" else decoder_dirs[family])
    state = {k.removeprefix("encoder."): v for k, v in encoder.state_dict().items() if k.startswith("encoder.")}
    ours = merged_state_dict(encoder.encoder, state)
    reference = copy.deepcopy(encoder.encoder).merge_and_unload().state_dict()  # peft's
    assert ours.keys() == reference.keys()
    for key in reference:
        torch.testing.assert_close(ours[key], reference[key], atol=1e-6, rtol=1e-5, msg=key)
    trainable = {n for n, p in encoder.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_" in n or n.startswith("mlp.") for n in trainable)
    assert not any("pooler" in n for n in trainable)  # BERT's unused pooler layer is not adapted


def test_the_saved_folder_loads_without_peft_and_its_adapter_with_peft(decoder_dirs, tmp_path):
    from sentence_transformers import SentenceTransformer

    encoder = lora_encoder(decoder_dirs["llama"])
    encoder.save_adapter = True
    ours = encoder.encode(SENTENCES)
    encoder.save_pretrained(str(tmp_path / "saved"))
    assert not (tmp_path / "saved" / "adapter_config.json").exists()  # else transformers would load it as one
    again = SentenceEncoder.from_pretrained(str(tmp_path / "saved")).encode(SENTENCES)
    torch.testing.assert_close(again, ours, atol=1e-5, rtol=1e-4)
    st = SentenceTransformer(str(tmp_path / "saved"), device="cpu").encode(SENTENCES, convert_to_tensor=True)
    assert torch.nn.functional.cosine_similarity(st, ours).min() >= 0.9999
    base = AutoModel.from_pretrained(decoder_dirs["llama"])
    adapted = peft.PeftModel.from_pretrained(base, tmp_path / "saved" / ADAPTER_DIR).merge_and_unload()
    merged = load_file(tmp_path / "saved" / "model.safetensors")
    for key, value in adapted.state_dict().items():
        torch.testing.assert_close(merged[key], value, atol=1e-6, rtol=1e-5, msg=key)


def argv(folder, corpus_file, out, *extra):
    return [
        "--model_name_or_path", str(folder), "--train_file", str(corpus_file), "--output_dir", str(out),
        "--per_device_train_batch_size", "8", "--max_seq_length", "16", "--max_steps", "4", "--save_steps", "2",
        "--resume_state_steps", "2", "--logging_steps", "1", "--eval_strategy", "no",
        "--load_best_model_at_end", "false", "--learning_rate", "1e-2", "--dataloader_pin_memory", "false",
        "--disable_tqdm", "true", "--dropout", "0.1", "--lora_r", "4", "--objective", "hybrid", "--hnm_k", "4",
        *extra,
    ]  # fmt: skip


def losses(out) -> dict[int, float]:
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    return {e["step"]: e["loss"] for e in history if "loss" in e}


def test_lora_training_changes_only_the_adapted_weights_and_resumes(decoder_dirs, corpus_file, tmp_path):
    folder = decoder_dirs["llama"]
    hncse.train.main(argv(folder, corpus_file, tmp_path / "whole"))
    expected = losses(tmp_path / "whole")
    assert sorted(expected) == [1, 2, 3, 4]
    start, trained = load_file(folder / "model.safetensors"), load_file(tmp_path / "whole" / "model.safetensors")
    assert trained.keys() == start.keys()
    assert torch.equal(trained["embed_tokens.weight"], start["embed_tokens.weight"])  # not adapted: unchanged
    assert torch.equal(trained["layers.0.input_layernorm.weight"], start["layers.0.input_layernorm.weight"])
    assert not torch.equal(trained["layers.0.self_attn.q_proj.weight"], start["layers.0.self_attn.q_proj.weight"])
    assert (tmp_path / "whole" / "checkpoint-2" / ADAPTER_DIR / "adapter_model.safetensors").is_file()
    assert not (tmp_path / "whole" / ADAPTER_DIR).exists()  # the final folder: merged weights only
    settings = json.loads((tmp_path / "whole" / "run_config.json").read_text())
    assert settings["lora_r"] == 4 and settings["lora_alpha"] == 8.0 and settings["lora_dropout"] == 0.05

    with crash_after_step(2), pytest.raises(RuntimeError, match="simulated crash"):
        hncse.train.main(argv(folder, corpus_file, tmp_path / "resumed"))
    hncse.train.main(argv(folder, corpus_file, tmp_path / "resumed"))  # resumes from checkpoint-2's adapter
    assert losses(tmp_path / "resumed") == expected
    resumed = load_file(tmp_path / "resumed" / "model.safetensors")
    assert all(torch.equal(resumed[k], trained[k]) for k in trained)


def test_lora_with_checkpointing_and_the_cached_step_trains_the_adapters(decoder_dirs, corpus_file, tmp_path):
    out = tmp_path / "cached"
    hncse.train.main(
        argv(decoder_dirs["qwen3"], corpus_file, out, "--mini_batch_size", "4", "--activation_checkpointing", "true",
             "--save_adapter", "true")
    )  # fmt: skip
    start = load_file(decoder_dirs["qwen3"] / "model.safetensors")
    trained = load_file(out / "model.safetensors")
    assert not torch.equal(trained["layers.1.mlp.down_proj.weight"], start["layers.1.mlp.down_proj.weight"])
    assert (out / ADAPTER_DIR / "adapter_config.json").is_file()


def test_lora_flags_without_lora_and_bad_targets_are_one_line(decoder_dirs, corpus_file, tmp_path):
    with pytest.raises(ConfigError, match=r"--lora_alpha applies to LoRA: add --lora_r"):
        hncse.train.main(["--train_file", str(corpus_file), "--lora_alpha", "8"])
    with pytest.raises(ConfigError, match=r"--lora_target_modules: .*no_such_proj"):
        hncse.train.main(
            argv(decoder_dirs["llama"], corpus_file, tmp_path / "b", "--lora_target_modules", "no_such_proj")
        )
    assert not (tmp_path / "b" / "model.safetensors").exists()


def test_lora_on_two_processes_ddp_zero2_zero3(decoder_dirs, corpus_file, tmp_path):
    """DDP and DeepSpeed ZeRO-2/3 on 2 gloo processes: ZeRO's loss curves equal DDP's, and each writes a merged
    folder that sentence-transformers loads with hncse's vectors, its embeddings untouched."""
    from sentence_transformers import SentenceTransformer

    curves = {}
    for launch in ("ddp", "zero2", "zero3"):
        out = tmp_path / launch
        extra = [] if launch == "ddp" else ["--deepspeed", f"ds_configs/{launch}.json"]
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
               "run_hncse.py", *argv(decoder_dirs["llama"], corpus_file, out, "--max_steps", "2"), *extra]  # fmt: skip
        proc = subprocess.run(
            cmd, cwd=REPO, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"}
        )
        assert proc.returncode == 0, launch_failure(proc)
        curves[launch] = losses(out)
        vectors = SentenceTransformer(str(out), device="cpu").encode(SENTENCES, convert_to_tensor=True)
        ours = SentenceEncoder.from_pretrained(str(out)).encode(SENTENCES)
        assert torch.nn.functional.cosine_similarity(vectors, ours).min() >= 0.9999
        start, trained = load_file(decoder_dirs["llama"] / "model.safetensors"), load_file(out / "model.safetensors")
        assert torch.equal(trained["embed_tokens.weight"], start["embed_tokens.weight"])
        assert not torch.equal(trained["layers.0.self_attn.v_proj.weight"], start["layers.0.self_attn.v_proj.weight"])
    assert sorted(curves["ddp"]) == [1, 2]
    for launch in ("zero2", "zero3"):
        assert curves[launch].keys() == curves["ddp"].keys()
        for step, loss in curves["ddp"].items():
            assert curves[launch][step] == pytest.approx(loss, rel=1e-4), (launch, step)


def test_the_card_names_the_lora_settings(decoder_dirs, corpus_file, tmp_path):
    out = tmp_path / "card"
    hncse.train.main(argv(decoder_dirs["llama"], corpus_file, out, "--max_steps", "1", "--save_strategy", "no"))
    card = (out / "README.md").read_text(encoding="utf-8")
    for row in ("| lora_r | 4 |", "| lora_alpha | 8.0 |", "| lora_dropout | 0.05 |", "| dropout | 0.1 |"):
        assert row in card, row
    assert "| pooler_type | lasttoken |" in card and "pip install peft" not in card  # loads without peft
