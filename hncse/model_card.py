"""A short README.md model card written with every saved folder."""

from __future__ import annotations

import os

import yaml

from hncse.citations import HNCSE_BIBTEX, SIMCSE_BIBTEX
from hncse.eval_suite import format_tables


def _dev_results(state, step: int) -> dict[str, float]:
    """The dev metrics logged at `step`, if an evaluation ran then."""
    for entry in reversed(state.log_history or []):
        if entry.get("step") == step and any(k.endswith("_spearman") for k in entry):
            return {k: v for k, v in entry.items() if k.endswith("_spearman")}
    return {}


def write_model_card(
    output_dir, encoder, args, state, loss, card_data: dict, tags: list[str], weights_step: int
) -> None:
    """README.md for a saved folder whose weights are those of training step `weights_step`."""
    base_model = card_data.get("base_model")
    metadata = {
        "library_name": "sentence-transformers",
        "pipeline_tag": "sentence-similarity",
        "tags": list(tags) + [loss.get_config_dict()["objective"]],
    }
    if base_model and not os.path.isdir(base_model):
        metadata["base_model"] = base_model
    results = _dev_results(state, weights_step)
    hyper = {**loss.get_config_dict(), "pooler_type": encoder.pooler_type, "mlp_only_train": encoder.mlp_only_train}
    hyper.update(
        learning_rate=args.learning_rate,
        per_device_train_batch_size=args.per_device_train_batch_size,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        num_train_epochs=args.num_train_epochs,
        seed=args.seed,
    )
    repo_id = args.hub_model_id or "path/to/this/folder"
    lines = [
        "---",
        yaml.safe_dump(metadata, sort_keys=False).strip(),
        "---",
        "",
        f"# {os.path.basename(os.path.abspath(output_dir))}",
        "",
        f"A sentence encoder trained with the `{hyper['objective']}` objective of the "
        "[hncse](https://arxiv.org/abs/2411.12156) recipe"
        + (f", starting from `{base_model}`." if base_model else "."),
        "",
        f"- Training data: {card_data.get('train_data', 'unknown')}",
        f"- Steps trained: {state.global_step}; this folder holds the weights of step {weights_step}",
        "",
        "## Hyper-parameters",
        "",
        "| name | value |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in hyper.items()],
        "",
    ]
    if results:
        lines += ["## Dev results (Spearman ×100)", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.2f} |" for k, v in results.items()] + [""]
    senteval = card_data.get("senteval_results")
    if senteval:
        lines += [
            "## SentEval test results",
            "",
            'Spearman ×100 of cosine similarity (STS; "all" is SimCSE\'s headline setting) and transfer '
            "accuracy ×100, from `run_hncse.py --do_predict` (the same code as `python -m hncse.evaluate`).",
            "",
            format_tables(senteval),
            "",
        ]
    lines += [
        "## Usage",
        "",
        "```python",
        "from sentence_transformers import SentenceTransformer",
        f'model = SentenceTransformer("{repo_id}")',
        'embeddings = model.encode(["A man is playing a guitar.", "Someone plays an instrument."])',
        "```",
        "",
        "## Citation",
        "",
        "```bibtex",
        HNCSE_BIBTEX,
        "",
        SIMCSE_BIBTEX,
        "```",
        "",
    ]
    with open(os.path.join(output_dir, "README.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
