"""Evaluate a sentence encoder on SentEval's STS and transfer tasks (SimCSE's table), offline and fast.

    python -m hncse.evaluate outputs/quickstart             # SentEval's data: $HNCSE_DATA_DIR's copy or the cache
    hncse-evaluate sentence-transformers/all-MiniLM-L6-v2 --pooler avg --task_set full --senteval_dir DIR
    python -m hncse.evaluate MODEL --mode dev --tasks stsb sickr          # the dev sets used during training
    python -m hncse.evaluate MODEL --sts_files my_test.csv mteb/sts22-crosslingual-sts:de@test   # your own STS sets
    python -m hncse.evaluate outputs/my-run --mteb STS12 STS22 --mteb_to_card     # MTEB (pip install 'hncse[mteb]')

MODEL is a folder written by run_hncse.py, any transformers checkpoint or a sentence-transformers folder (a
local path or a Hub id). Prints markdown tables ("all" is the headline STS12–16 setting, "wmean" beside it)
and writes every number, per-subset scores included, to a JSON file.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import tempfile

import torch

from hncse.data.sources import DATA_DIR_ENV, resolve_senteval_dir
from hncse.errors import EvalConfigError, first_line, run_cli
from hncse.evaluation import (
    MODES,
    TASK_SETS,
    load_sts_files,
    load_suite,
    parse_sts_files,
    resolve_tasks,
    results_tables,
    run_suite,
)
from hncse.evaluation.mteb_runner import add_to_card, card_path, mteb_table, mteb_tasks, run_mteb
from hncse.modeling import POOLERS, SentenceEncoder

logger = logging.getLogger("hncse.evaluate")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hncse-evaluate", description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("model", help="output folder of run_hncse.py, transformers checkpoint or ST folder/Hub id")
    parser.add_argument(
        "--pooler",
        default="auto",
        choices=["auto", *POOLERS],  # those registered when the parser is made
        help="auto: the folder's own (hncse_config.json, else its sentence-transformers Pooling), else cls",
    )
    parser.add_argument(
        "--task_set",
        default=None,
        choices=list(TASK_SETS),
        help="which SentEval tasks (default: sts; none with --sts_files unless named)",
    )
    parser.add_argument("--tasks", nargs="+", help="explicit tasks instead of --task_set, e.g. stsb sickr mr")
    parser.add_argument(
        "--sts_files",
        nargs="+",
        default=[],
        help="your own STS sets: CSV/TSV/JSON Lines/parquet files or Hub datasets name[:config][@split] (default\n"
        "split: test, validation with --mode dev) with columns sentence1, sentence2, score (any scale)",
    )
    parser.add_argument("--sts_columns", nargs=3, metavar=("SENTENCE1", "SENTENCE2", "SCORE"), default=None)
    parser.add_argument(
        "--mode",
        default="test",
        choices=MODES,
        help="test: test sets, full transfer protocol; fasttest: test sets, fast transfer protocol;\n"
        "dev: STS-B/SICK-R dev sets and transfer validation accuracy (fast protocol)",
    )
    parser.add_argument(
        "--senteval_dir",
        default=None,
        help=f"SentEval's data/downstream folder, or `senteval` (princeton-nlp/datasets-for-simcse's senteval.tar:\n"
        f"local copy, cache or download). Default: the copy in ${DATA_DIR_ENV}, else one downloaded earlier,\n"
        "else the STS sets come from the Hub's mteb/* copies",
    )
    parser.add_argument("--batch_size", type=int, default=128, help="sentences per forward pass")
    parser.add_argument("--max_seq_length", type=int, default=None, help="truncate longer inputs (default: model's)")
    parser.add_argument("--bf16", action="store_true", help="encode under bfloat16 autocast (GPU)")
    parser.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    parser.add_argument(
        "--mrpc_features",
        default="senteval",
        choices=["senteval", "full"],
        help="senteval: [|u-v|, u*v] as SentEval's code; full: [u, v, |u-v|, u*v]",
    )
    parser.add_argument("--no_alignment", action="store_true", help="skip alignment/uniformity on STS-B dev")
    parser.add_argument(
        "--mteb",
        nargs="+",
        default=[],
        metavar="TASK",
        help="MTEB tasks or benchmarks (e.g. STS12 STS22 'MTEB(eng, v2)') on the folder as sentence-transformers\n"
        "loads it, after the other evaluations (none by default with --mteb); pip install 'hncse[mteb]'",
    )
    parser.add_argument(
        "--mteb_output_folder",
        default=os.path.join("eval_results", "mteb"),
        help="MTEB's own result files: DIR/results/<model>/<revision>/<task>.json",
    )
    parser.add_argument(
        "--mteb_to_card",
        action="store_true",
        help="add the MTEB scores to the local MODEL folder's README.md: its model-index and an MTEB section",
    )
    parser.add_argument(
        "--output_json", default=None, help="default: eval_results/<model>-<pooler>-<mode>-<task_set>.json"
    )
    return parser


def default_output_json(model: str, pooler: str, mode: str, task_set: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", os.path.basename(os.path.normpath(model)) or model)
    return os.path.join("eval_results", f"{slug}-{pooler}-{mode}-{task_set}.json")


def check_device(device: str) -> None:
    """--device names a device this torch has (one line, not a traceback from the first tensor moved there)."""
    try:
        kind = torch.device(device).type
    except RuntimeError as error:
        raise EvalConfigError(f"--device {device}: {first_line(error)}") from None
    if kind == "cuda" and not torch.cuda.is_available():
        build = "a CPU build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}, but no GPU is visible"
        raise EvalConfigError(
            f"--device {device}: no CUDA device here (torch {torch.__version__}, {build}); use --device cpu"
        )


def check_mteb_arguments(args: argparse.Namespace) -> list:
    """The MTEB tasks asked for (resolved, no data loaded), or one line for a combination that cannot hold."""
    if not args.mteb:
        if args.mteb_to_card:
            raise EvalConfigError("--mteb_to_card adds MTEB's scores to the card: it needs --mteb TASK …")
        return []
    if args.pooler != "auto":
        raise EvalConfigError(
            f"--pooler {args.pooler}: --mteb scores the folder as sentence-transformers loads it (its own Pooling "
            "module); run --mteb without --pooler"
        )
    if args.bf16:
        raise EvalConfigError("--bf16: --mteb runs the model as sentence-transformers loads it (float32); drop --bf16")
    if args.mteb_to_card:
        card_path(args.model)
    return mteb_tasks(args.mteb)


def evaluate_model(args: argparse.Namespace) -> dict:
    if args.batch_size < 1:
        raise EvalConfigError(f"--batch_size must be at least 1, got {args.batch_size}")
    if args.max_seq_length is not None and args.max_seq_length < 2:
        raise EvalConfigError(f"--max_seq_length must be at least 2, got {args.max_seq_length}")
    mteb_task_list = check_mteb_arguments(args)  # unknown names fail before anything loads
    sources = parse_sts_files(args.sts_files)
    with_senteval = (not sources and not args.mteb) or args.tasks or args.task_set
    tasks = resolve_tasks(args.task_set or "sts", args.tasks, args.mode) if with_senteval else []
    senteval_dir = resolve_senteval_dir(args.senteval_dir) if tasks else None
    # Data before the model: a missing file fails in a second.
    files = load_sts_files(sources, args.sts_columns, "dev" if args.mode == "dev" else "test")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    check_device(device)
    results: dict = {"model": args.model}
    if tasks or files:
        alignment = bool(tasks) and not args.no_alignment  # measured on STS-B dev: with SentEval's sets
        suite = load_suite(tasks, args.mode, senteval_dir, alignment=alignment, extra=files)
        encoder = SentenceEncoder.from_pretrained(
            args.model,
            pooler_type=None if args.pooler == "auto" else args.pooler,
            max_seq_length=args.max_seq_length,
            argument="model",
        )
        refused = args.max_seq_length is not None and encoder.length_refused(args.max_seq_length, args.model)
        if refused:
            raise EvalConfigError(refused)
        encoder.to(device).eval()
        scores = run_suite(
            encoder, suite, batch_size=args.batch_size, bf16=args.bf16, mrpc_features=args.mrpc_features
        )
        results.update(
            pooler=encoder.pooler_type,
            task_set="custom" if args.tasks else (args.task_set or "sts") if tasks else "sts_files",
            senteval_dir=senteval_dir or "hub",
            mrpc_features=args.mrpc_features,
            **scores,
        )
        del encoder  # MTEB loads the folder itself
    else:
        results.update(pooler="st", task_set="mteb")  # the folder's own sentence-transformers modules
    if mteb_task_list:
        results["mteb"] = run_mteb(
            args.model,
            mteb_task_list,
            args.mteb_output_folder,
            batch_size=args.batch_size,
            device=device,
            max_seq_length=args.max_seq_length,
        )
    return results


def check_output_json(path: str) -> None:
    """The results file can be written, checked before anything is encoded (one line, not minutes later)."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        if os.path.isdir(path):
            raise IsADirectoryError(f"{path} is a folder")
        os.makedirs(folder, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".hncse-write-check-"):
            pass
    except OSError as error:
        raise EvalConfigError(f"--output_json {path}: cannot be written there ({first_line(error)})") from None


def write_json(path: str, results: dict) -> None:
    """The results as JSON, written in one step (a temporary file renamed over `path`): never half a file."""
    partial = f"{path}.partial"
    try:
        with open(partial, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)
            f.write("\n")
        os.replace(partial, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            os.remove(partial)
        raise EvalConfigError(
            f"{path}: the results could not be written ({first_line(error)}); they are printed above"
        ) from None


def main(argv: list[str] | None = None) -> dict:
    args = make_parser().parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    check_output_json(args.output_json or os.path.join("eval_results", "check.json"))
    results = evaluate_model(args)
    output = args.output_json or default_output_json(args.model, results["pooler"], args.mode, results["task_set"])
    blocks = []
    if "encode_seconds" in results:
        blocks += [
            f"{args.model} · pooler {results['pooler']} · mode {args.mode} · {results['sentences_encoded']} "
            f"sentences encoded in {results['encode_seconds']:.1f} s · total {results['seconds']:.1f} s",
            results_tables(results),
        ]
    if "mteb" in results:
        blocks += [
            f"{args.model} · MTEB {results['mteb']['mteb_version']} · result files in {args.mteb_output_folder}",
            mteb_table(results["mteb"]),
        ]
    # Printed before any file is written: a path that cannot be written loses nothing.
    print("\n" + "\n\n".join(blocks) + "\n", flush=True)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    write_json(output, results)
    print(f"Wrote {output}")
    if args.mteb_to_card:
        command = "python -m hncse.evaluate " + " ".join(["FOLDER", "--mteb", *args.mteb])
        print(f"Added the MTEB scores to {add_to_card(args.model, results['mteb'], command)}")
    return results


def cli() -> None:
    run_cli(main, "hncse-evaluate")


if __name__ == "__main__":
    cli()
