"""Score an output folder on STS-B dev with sentence-transformers alone (a cross-check of run_hncse.py's figure).

python bench/results/score_with_sentence_transformers.py outputs/quickstart [--data_dir SENTEVAL_DOWNSTREAM_DIR]

The STS-B dev file is found as the quickstart finds it (the local copy of $HNCSE_DATA_DIR, the cache, or a
download); only the scoring is sentence-transformers'.
"""

import argparse
import csv
import os

import torch
from scipy.stats import spearmanr
from sentence_transformers import SentenceTransformer

from hncse.data.sources import resolve_senteval_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir")
    parser.add_argument("--data_dir", default=None, help="SentEval's data/downstream (default: as the quickstart)")
    args = parser.parse_args()
    args.data_dir = args.data_dir or resolve_senteval_dir("senteval")
    with open(os.path.join(args.data_dir, "STS", "STSBenchmark", "sts-dev.csv"), encoding="utf-8") as f:
        rows = [r for r in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE) if len(r) >= 7]
    first, second = [" ".join(r[5].split()) for r in rows], [" ".join(r[6].split()) for r in rows]
    model = SentenceTransformer(args.model_dir, device="cpu")
    a = model.encode(first, convert_to_tensor=True, batch_size=128)
    b = model.encode(second, convert_to_tensor=True, batch_size=128)
    cosine = torch.nn.functional.cosine_similarity(a, b).numpy()
    score = spearmanr(cosine, [float(r[4]) for r in rows]).correlation * 100
    print(f"sentence-transformers STS-B dev Spearman x100 ({len(rows)} pairs): {score:.2f}")


if __name__ == "__main__":
    main()
