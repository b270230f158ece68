"""The model card (README.md) written with every saved folder: Hub metadata, how it was trained, results, usage.

The YAML header follows sentence-transformers' cards (`library_name`, `pipeline_tag`, a `model-index` with
`spearman_cosine` per STS set) so that the Hub shows the results and lists the model with its peers.
"""

from __future__ import annotations

import math
import os
import re

import yaml

from hncse.citations import HNCSE_BIBTEX, SIMCSE_BIBTEX
from hncse.data.sources import CORPORA, HUB_DATASET
from hncse.evaluation import dev_metric_spec, dev_metrics_in, index_results, results_tables
from hncse.losses import get_objective
from hncse.modeling import MLP_WEIGHTS_NAME, get_pooler
from hncse.modeling.resolve import model_license
from hncse.plots import CURVES_NAME
from hncse.training.checkpoints import MODEL_CARD_NAME
from hncse.training.run_facts import RunFacts

HEAD_CODE = [
    "from huggingface_hub import hf_hub_download",
    "from safetensors.torch import load_file",
    "",
    f'head = load_file(hf_hub_download("{{repo}}", "{MLP_WEIGHTS_NAME}"))  # the Linear+tanh head trained with it',
    'embeddings = torch.tanh(embeddings @ head["weight"].T + head["bias"])',
]
HUB_DATASET_URL = re.compile(r"^(?:https://huggingface\.co/datasets/|hf://datasets/)([^/@]+/[^/@]+)")


def hub_dataset_id(train_file: str | None, dataset_name: str | None) -> str | None:
    """The Hub dataset the corpus came from (for the card's `datasets`), if it came from one."""
    if dataset_name and not os.path.exists(dataset_name):
        return dataset_name
    if train_file in CORPORA:  # named: from princeton-nlp/datasets-for-simcse (or a local copy of it)
        return HUB_DATASET
    match = HUB_DATASET_URL.match(train_file or "")
    return match.group(1) if match else None


def model_index(name: str, dev_results: dict[str, float], senteval: dict | None) -> list[dict]:
    """`model-index` entries: the dev metrics of these weights (STS-B / SICK-R dev Spearman) and the test sets'
    results, each kind of set saying how it is described (`Evaluator.dev_index_results`, `index_results`)."""
    results = []
    for metric, value in dev_results.items():
        spec = dev_metric_spec(metric)
        if spec is not None:
            results += spec.kind.dev_index_results(spec, value)
    results += index_results(senteval or {}, "test")
    # A NaN or infinite score is no result to publish (the Hub's YAML would say `.nan`): left out.
    results = [r for r in results if all(math.isfinite(m.get("value", 0.0)) for m in r.get("metrics", []))]
    return [{"name": name, "results": results}] if results else []


def plain_transformers_usage(repo: str, pooler_type: str, uses_mlp: bool, max_seq_length: int) -> list[str]:
    """Code that computes the embeddings with transformers alone (as `SentenceEncoder.encode` does); the pooling
    is the pooler's own lines (`Pooler.card_code`)."""
    lines = [
        "import torch",
        "from transformers import AutoModel, AutoTokenizer",
        "",
        'sentences = ["A man is playing a guitar.", "Someone plays an instrument.", "The sky is blue."]',
        f'tokenizer = AutoTokenizer.from_pretrained("{repo}")',
        f'model = AutoModel.from_pretrained("{repo}").eval()',
        f"batch = tokenizer(sentences, padding=True, truncation=True, max_length={max_seq_length}, "
        'return_tensors="pt")',
        "with torch.no_grad():",
        "    outputs = model(**batch, output_hidden_states=True)",
        *get_pooler(pooler_type).card_code,
    ]
    if uses_mlp:
        lines += [line.replace("{repo}", repo) for line in HEAD_CODE]
    return lines + [
        "embeddings = torch.nn.functional.normalize(embeddings, dim=-1)",
        "print(embeddings @ embeddings.T)  # cosine similarities",
    ]


def usage_section(
    repo: str, pooler_type: str, uses_mlp: bool, max_seq_length: int, modules: list[str] | tuple = ()
) -> list[str]:
    """How to load it: sentence-transformers, hncse and, when the vector is the pooling alone (and our head),
    transformers alone. `modules`: the sentence-transformers modules beyond those (Dense, Normalize, …)."""
    if modules:
        plain = [f"Its vector goes through sentence-transformers modules after the pooling ({', '.join(modules)}): "
                 "load it with one of the above.", ""]  # fmt: skip
    else:
        plain = [
            "With transformers alone:",
            "",
            "```python",
            *plain_transformers_usage(repo, pooler_type, uses_mlp, max_seq_length),
            "```",
            "",
        ]
    return [
        "## Usage",
        "",
        "With [sentence-transformers](https://www.sbert.net):",
        "",
        "```python",
        "from sentence_transformers import SentenceTransformer",
        "",
        f'model = SentenceTransformer("{repo}")',
        'embeddings = model.encode(["A man is playing a guitar.", "Someone plays an instrument."])',
        "print(model.similarity(embeddings, embeddings))",
        "```",
        "",
        "With [hncse](https://arxiv.org/abs/2411.12156) (this recipe):",
        "",
        "```python",
        "from hncse import SentenceEncoder, similarity",
        "",
        f'model = SentenceEncoder.from_pretrained("{repo}")',
        'embeddings = model.encode(["A man is playing a guitar.", "Someone plays an instrument."])',
        "print(similarity(embeddings, embeddings))",
        "```",
        "",
        *plain,
    ]


def _dev_results(state, step: int) -> dict[str, float]:
    """The dev metrics logged at `step`, if an evaluation ran then."""
    for entry in reversed(state.log_history or []):
        metrics = dev_metrics_in(entry) if entry.get("step") == step else []
        if metrics:
            return {k: entry[k] for k in metrics}
    return {}


def write_model_card(
    output_dir, encoder, args, state, loss, facts: RunFacts, tags: list[str], weights: tuple[int, str], repo_id: str
) -> None:
    """README.md for a saved folder.

    weights: (training step, which one it is: "the last step", "the best checkpoint by …", "a checkpoint").
    repo_id: the name users load it by in the usage snippets (the Hub repository, else the local folder).
    """
    weights_step, which = weights
    config = loss.get_config_dict()
    objective = get_objective(config["objective"])
    run = facts.settings
    base_model = facts.base_model
    name = os.path.basename(os.path.abspath(output_dir))
    dev = _dev_results(state, weights_step)
    senteval = facts.senteval_results
    max_seq_length = facts.max_seq_length

    metadata = {
        "library_name": "sentence-transformers",
        "pipeline_tag": "sentence-similarity",
        "tags": list(dict.fromkeys([*tags, "feature-extraction", objective.name])),
    }
    if base_model and not os.path.isdir(base_model):
        metadata["base_model"] = base_model
    dataset = hub_dataset_id(run.get("train_file"), run.get("dataset_name"))
    if dataset:
        metadata["datasets"] = [dataset]
    index = model_index(repo_id.split("/")[-1] if "/" in repo_id else name, dev, senteval)
    if index:
        metadata["model-index"] = index

    global_batch = args.per_device_train_batch_size * args.world_size * args.gradient_accumulation_steps
    hyper = {**config, "pooler_type": encoder.pooler_type, "mlp_only_train": encoder.mlp_only_train}
    hyper.update(
        learning_rate=args.learning_rate,
        lr_scheduler_type=str(getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type)),
        per_device_train_batch_size=args.per_device_train_batch_size,
        processes=args.world_size,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        global_batch_size=global_batch,
        gather_negatives=args.gather_negatives,
        max_seq_length=max_seq_length,
        num_train_epochs=args.num_train_epochs,
        max_steps=args.max_steps,
        precision="bf16" if args.bf16 else "fp16" if args.fp16 else "fp32",
        seed=args.seed,
    )
    # What changes the backbone itself, where the run asked for it: --dropout, --bidirectional, LoRA.
    lora = ["lora_r", "lora_alpha", "lora_dropout", "lora_target_modules"] if run.get("lora_r") else []
    hyper.update({k: run[k] for k in ["dropout", "bidirectional", *lora] if run.get(k) is not None})
    licence = model_license(base_model) if base_model else None
    pooling = get_pooler(encoder.pooler_type).card_words
    pooling += ", through a Linear+tanh head" if encoder.uses_mlp_at_inference else ""
    lines = [
        "---",
        yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True).strip(),
        "---",
        "",
        f"# {name}",
        "",
        f"A sentence encoder: it maps a sentence to a {encoder.embedding_dim}-dimensional vector ({pooling}) "
        "whose cosine similarity measures how close two sentences are in meaning. It was trained "
        + ("without labels" if facts.shape == "sentences" else f"on labelled {facts.shape}")
        + " by contrastive learning with the [hncse](https://arxiv.org/abs/2411.12156) recipe"
        + (f", starting from `{base_model}`." if base_model else "."),
        "",
        "## Training",
        "",
        f"- Objective: `{objective.name}` — {objective.description}.",
        f"- Data: {facts.train_data or 'unknown'}"
        + (f", {facts.train_sentences:,} {facts.shape}" if facts.train_sentences else "")
        + (", read as a stream" if facts.settings.get("streaming") else "")
        + (f", truncated to {max_seq_length} tokens" if max_seq_length else ""),
        *([f"- Base model's licence: `{licence}` (its model card's); this model derives from it."] if licence else []),
        f"- Steps: {state.global_step} of global batch {global_batch}; this folder holds the weights of step "
        f"{weights_step} ({which}).",
        "",
        "| hyper-parameter | value |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in hyper.items()],
        "",
    ]
    if dev:
        lines += ["## Dev results (×100)", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.2f} |" for k, v in dev.items()] + [""]
    if os.path.isfile(os.path.join(output_dir, CURVES_NAME)):
        lines += [
            "## Training curves",
            "",
            f"![Training curves: loss, dev scores and batch similarities over the steps]({CURVES_NAME})",
            "",
            f"The training loss, the dev scores (the best evaluation starred) and the objective's batch statistics up "
            f"to step {state.global_step}, drawn from the run's log (`hncse-plot FOLDER` draws them again from "
            "`trainer_state.json`).",
            "",
        ]
    if senteval:
        own = bool(senteval.get("sts_files"))  # --predict_sts_files
        lines += [
            "## Test results" if own else "## SentEval test results",
            "",
            'Spearman ×100 of cosine similarity (STS; "all" is SimCSE\'s headline setting'
            + ("; STS files: your own sets, Pearson beside" if own else "")
            + ") and transfer accuracy ×100, from `run_hncse.py --do_predict` (the same code as "
            "`python -m hncse.evaluate`).",
            "",
            results_tables(senteval),
            "",
        ]
    lines += usage_section(
        repo_id, encoder.pooler_type, encoder.uses_mlp_at_inference, encoder.max_seq_length,
        encoder.sentence_transformers_modules,
    )  # fmt: skip
    # The recipe (HNCSE's code base, SimCSE's dropout views), then whatever else the objective builds on.
    citations = list(dict.fromkeys([HNCSE_BIBTEX, SIMCSE_BIBTEX, *objective.citations]))
    lines += ["## Citation", "", "```bibtex", "\n\n".join(citations), "```", ""]
    with open(os.path.join(output_dir, MODEL_CARD_NAME), "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
