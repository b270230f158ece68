"""Small real labelled sets from SentEval's training splits, for the supervised table of docs/results.md.

    python -m bench.results.supervised_data [--senteval_dir senteval] [--out outputs/supervised-data]

- `sick_triplets.csv` (sent0, sent1, hard_neg): SICK's training split (SICK_train.txt). For every pair judged
  ENTAILMENT (A entails B), the anchor A, the positive B and, as hard negative, the first sentence in file order
  that SICK judges a CONTRADICTION of A (in either column). Entailment pairs whose A has no contradiction are
  left out. This is SimCSE's NLI recipe (premise, entailed hypothesis, contradicting hypothesis) on SICK.
- `stsb_pairs.csv` (sent0, sent1): STS-B's training split (sts-train.csv), the pairs scored ≥ 4 of 5.

Sentences are taken as the files give them. Prints how many rows each file has.
"""

from __future__ import annotations

import argparse
import csv
import os
from collections import defaultdict

from hncse.data.sources import resolve_senteval_dir

STSB_MIN_SCORE = 4.0


def sick_triplets(senteval_dir: str) -> list[tuple[str, str, str]]:
    path = os.path.join(senteval_dir, "SICK", "SICK_train.txt")
    with open(path, encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f][1:]  # pair_ID, A, B, relatedness, judgement
    contradictions: dict[str, list[str]] = defaultdict(list)
    for _, a, b, _, judgement in rows:
        if judgement == "CONTRADICTION":
            contradictions[a].append(b)
            contradictions[b].append(a)
    return [
        (a, b, contradictions[a][0])
        for _, a, b, _, judgement in rows
        if judgement == "ENTAILMENT" and contradictions[a]
    ]


def stsb_pairs(senteval_dir: str) -> list[tuple[str, str]]:
    path = os.path.join(senteval_dir, "STS", "STSBenchmark", "sts-train.csv")
    with open(path, encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f]  # genre, file, year, id, score, s1, s2[, source…]
    return [(r[5], r[6]) for r in rows if float(r[4]) >= STSB_MIN_SCORE]


def write_csv(path: str, header: list[str], rows: list[tuple]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def build(senteval_dir: str, out: str) -> dict[str, str]:
    """Write both files into `out`; returns their paths by name."""
    os.makedirs(out, exist_ok=True)
    paths = {
        "sick_triplets": os.path.join(out, "sick_triplets.csv"),
        "stsb_pairs": os.path.join(out, "stsb_pairs.csv"),
    }
    triplets = sick_triplets(senteval_dir)
    write_csv(paths["sick_triplets"], ["sent0", "sent1", "hard_neg"], triplets)
    pairs = stsb_pairs(senteval_dir)
    write_csv(paths["stsb_pairs"], ["sent0", "sent1"], pairs)
    print(f"{paths['sick_triplets']}: {len(triplets)} triplets; {paths['stsb_pairs']}: {len(pairs)} pairs", flush=True)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--senteval_dir", default="senteval", help="SentEval's data/downstream, or `senteval`")
    parser.add_argument("--out", default="outputs/supervised-data")
    args = parser.parse_args()
    build(resolve_senteval_dir(args.senteval_dir), args.out)


if __name__ == "__main__":
    main()
