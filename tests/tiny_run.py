"""The command line of a short run on the tiny test model, shared by the end-to-end tests of every folder."""

import run_hncse

REPO = run_hncse.__file__.rsplit("/", 1)[0]


def base_argv(tiny_model_dir, corpus_file, senteval_dir, output_dir):
    return [
        "--model_name_or_path", str(tiny_model_dir),
        "--train_file", str(corpus_file),
        "--senteval_dir", str(senteval_dir),
        "--output_dir", str(output_dir),
        "--per_device_train_batch_size", "8",
        "--max_seq_length", "16",
        "--learning_rate", "1e-3",
        "--eval_steps", "1",
        "--save_steps", "1",
        "--logging_steps", "1",
        "--max_steps", "3",
        "--dataloader_pin_memory", "false",
        "--disable_tqdm", "true",
    ]  # fmt: skip
