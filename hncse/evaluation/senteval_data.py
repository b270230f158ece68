"""SentEval's evaluation sets, read from its `data/downstream` layout or (STS only) from the Hub's `mteb/*` copies.

The readers follow SentEval's own loaders: the same files, columns, encodings and filtering (STS pairs whose
gold line is empty are dropped; STS12–16 keep SentEval's subset lists, so STS13 has no SMT subset). Text is
whitespace-normalised as SentEval's `split()` followed by SimCSE's `' '.join` would leave it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from hncse.data.sources import DATA_DIR_ENV
from hncse.errors import EvalDataError, first_line

STS_YEARS = {
    "STS12": ["MSRpar", "MSRvid", "SMTeuroparl", "surprise.OnWN", "surprise.SMTnews"],
    "STS13": ["FNWN", "headlines", "OnWN"],
    "STS14": ["deft-forum", "deft-news", "headlines", "images", "OnWN", "tweet-news"],
    "STS15": ["answers-forums", "answers-students", "belief", "headlines", "images"],
    "STS16": ["answer-answer", "headlines", "plagiarism", "postediting", "question-question"],
}
STS_TASKS = [*STS_YEARS, "STSBenchmark", "SICKRelatedness"]
TRANSFER_TASKS = ["MR", "CR", "SUBJ", "MPQA", "SST2", "TREC", "MRPC"]
# Short names used in tables, metric keys and --eval_tasks.
SHORT_NAMES = {
    **{year: year.lower() for year in STS_YEARS},
    "STSBenchmark": "stsb",
    "SICKRelatedness": "sickr",
    **{task: task.lower() for task in TRANSFER_TASKS},
}
TABLE_NAMES = {**{year: year for year in STS_YEARS}, "STSBenchmark": "STS-B", "SICKRelatedness": "SICK-R"}

STSB_FILES = {"train": "sts-train.csv", "dev": "sts-dev.csv", "test": "sts-test.csv"}
SICK_FILES = {"train": "SICK_train.txt", "dev": "SICK_trial.txt", "test": "SICK_test_annotated.txt"}
BINARY_FILES = {  # task: (folder, positive-class file, negative-class file); label 1 = the first file
    "MR": ("MR", "rt-polarity.pos", "rt-polarity.neg"),
    "CR": ("CR", "custrev.pos", "custrev.neg"),
    "SUBJ": ("SUBJ", "subj.objective", "subj.subjective"),
    "MPQA": ("MPQA", "mpqa.pos", "mpqa.neg"),
}
TREC_CLASSES = ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]
HUB_STS = {  # task: (Hub dataset, {our split: Hub split})
    "STS12": ("mteb/sts12-sts", {"test": "test"}),
    "STS13": ("mteb/sts13-sts", {"test": "test"}),
    "STS14": ("mteb/sts14-sts", {"test": "test"}),
    "STS15": ("mteb/sts15-sts", {"test": "test"}),
    "STS16": ("mteb/sts16-sts", {"test": "test"}),
    "STSBenchmark": ("mteb/stsbenchmark-sts", {"train": "train", "dev": "validation", "test": "test"}),
    "SICKRelatedness": ("mteb/sickr-sts", {"test": "test"}),
}


@dataclass
class STSPairs:
    """Sentence pairs with gold similarity scores."""

    name: str
    sentences1: list[str]
    sentences2: list[str]
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)


@dataclass
class STSTask:
    """One STS table column: a year's subsets (STS12–16) or one split (STS-B, SICK-R)."""

    name: str
    subsets: list[STSPairs]


@dataclass
class ClassificationTask:
    """A transfer task. `splits` maps train/dev/test to (texts, labels); texts are sentences or sentence pairs.

    protocol: "cv" (SentEval's nested k-fold on one pool: MR, CR, SUBJ, MPQA), "kfold" (k-fold on train for the
    regulariser, then test: TREC, MRPC) or "split" (given train/dev/test: SST-2).
    """

    name: str
    splits: dict[str, tuple[list, np.ndarray]]
    protocol: str
    num_classes: int
    pairs: bool = False
    sizes: dict[str, int] = field(default_factory=dict)

    def sentences(self) -> list[str]:
        out = []
        for texts, _ in self.splits.values():
            for text in texts:
                out.extend(text if self.pairs else [text])
        return out


def normalise(text: str) -> str:
    return " ".join(text.split())


def _read_lines(path: str, flag: str, encoding: str = "utf-8") -> list[str]:
    if not os.path.isfile(path):
        raise EvalDataError(
            f"{path}: missing evaluation file (set SentEval's data/downstream folder with {flag} or ${DATA_DIR_ENV})"
        )
    with open(path, encoding=encoding) as f:
        return f.read().splitlines()


def _columns(path: str, line_no: int, line: str, needed: int) -> list[str]:
    columns = line.strip().split("\t")
    if len(columns) < needed:
        raise EvalDataError(f"{path}:{line_no}: expected at least {needed} tab-separated columns, got {len(columns)}")
    return columns


def _float(path: str, line_no: int, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise EvalDataError(f"{path}:{line_no}: not a number: {value!r}") from None


def load_sts_year(data_dir: str, year: str, flag: str = "--senteval_dir") -> STSTask:
    """STS12–16: STS.input.<subset>.txt (two tab-separated sentences) + STS.gs.<subset>.txt (score or empty)."""
    folder = os.path.join(data_dir, "STS", f"{year}-en-test")
    subsets = []
    for subset in STS_YEARS[year]:
        input_path = os.path.join(folder, f"STS.input.{subset}.txt")
        gold_path = os.path.join(folder, f"STS.gs.{subset}.txt")
        inputs = _read_lines(input_path, flag)
        gold = _read_lines(gold_path, flag)
        if len(inputs) != len(gold):
            raise EvalDataError(f"{input_path}: {len(inputs)} lines but {gold_path} has {len(gold)}")
        s1, s2, scores = [], [], []
        for i, (line, score) in enumerate(zip(inputs, gold), start=1):
            if score.strip() == "":
                continue
            a, b = _columns(input_path, i, line, 2)[:2]
            s1.append(normalise(a))
            s2.append(normalise(b))
            scores.append(_float(gold_path, i, score))
        subsets.append(STSPairs(f"{year}/{subset}", s1, s2, np.array(scores)))
    return STSTask(year, subsets)


def load_stsb(data_dir: str, split: str = "dev", flag: str = "--senteval_dir") -> STSPairs:
    """STS Benchmark: STS/STSBenchmark/sts-{split}.csv, score in column 5, sentences in columns 6 and 7."""
    path = os.path.join(data_dir, "STS", "STSBenchmark", STSB_FILES[split])
    rows = [(i, _columns(path, i, line, 7)) for i, line in enumerate(_read_lines(path, flag), start=1)]
    return STSPairs(
        f"STSBenchmark/{split}",
        [normalise(r[5]) for _, r in rows],
        [normalise(r[6]) for _, r in rows],
        np.array([_float(path, i, r[4]) for i, r in rows]),
    )


def load_sickr(data_dir: str, split: str = "dev", flag: str = "--senteval_dir") -> STSPairs:
    """SICK relatedness: SICK/<file> with a header line; sentence A, B and the score in columns 2–4."""
    path = os.path.join(data_dir, "SICK", SICK_FILES[split])
    lines = _read_lines(path, flag)[1:]
    rows = [(i, _columns(path, i, line, 4)) for i, line in enumerate(lines, start=2)]
    return STSPairs(
        f"SICKRelatedness/{split}",
        [normalise(r[1]) for _, r in rows],
        [normalise(r[2]) for _, r in rows],
        np.array([_float(path, i, r[3]) for i, r in rows]),
    )


def load_sts_from_hub(task: str, split: str = "test") -> STSTask:
    """The `mteb/*` copy of an STS set. The Hub copies have no subset column, so STS12–16 give "all" only."""
    from datasets import load_dataset

    repo, splits = HUB_STS[task]
    if split not in splits:
        raise EvalDataError(
            f"{task} {split}: not in {repo} on the Hub; point --senteval_dir at SentEval's data/downstream folder"
        )
    try:
        ds = load_dataset(repo, split=splits[split])
    except Exception as error:  # offline, no such dataset, …: one line that says what to do
        raise EvalDataError(
            f"{task}: cannot download {repo} from the Hub ({first_line(error)}); "
            "point --senteval_dir at SentEval's data/downstream folder instead"
        ) from None
    pairs = STSPairs(
        f"{task}/{split}",
        [normalise(s) for s in ds["sentence1"]],
        [normalise(s) for s in ds["sentence2"]],
        np.array(ds["score"], dtype=float),
    )
    return STSTask(task, [pairs])


def load_sts_task(task: str, data_dir: str | None, split: str = "test", flag: str = "--senteval_dir") -> STSTask:
    """An STS table column. STS12–16 exist only as test sets; STS-B and SICK-R have train/dev/test.

    data_dir: SentEval's data/downstream folder (`hncse.data.sources.resolve_senteval_dir`); None: the Hub's copies.
    """
    if data_dir is None:
        return load_sts_from_hub(task, split if task in ("STSBenchmark", "SICKRelatedness") else "test")
    if task in STS_YEARS:
        return load_sts_year(data_dir, task, flag)
    loader = {"STSBenchmark": load_stsb, "SICKRelatedness": load_sickr}[task]
    return STSTask(task, [loader(data_dir, split, flag)])


def _binary(data_dir: str, task: str, flag: str) -> ClassificationTask:
    folder, positive, negative = BINARY_FILES[task]
    texts, labels = [], []
    for name, label in ((positive, 1), (negative, 0)):
        # SentEval reads these files as Latin-1 (all of them are ASCII in the usual distribution).
        lines = _read_lines(os.path.join(data_dir, folder, name), flag, encoding="latin-1")
        texts += [normalise(line) for line in lines]
        labels += [label] * len(lines)
    return ClassificationTask(task, {"train": (texts, np.array(labels))}, "cv", 2)


def _sst2(data_dir: str, flag: str) -> ClassificationTask:
    splits = {}
    for split, name in (("train", "sentiment-train"), ("dev", "sentiment-dev"), ("test", "sentiment-test")):
        path = os.path.join(data_dir, "SST", "binary", name)
        rows = [(i, _columns(path, i, line, 2)) for i, line in enumerate(_read_lines(path, flag), start=1)]
        splits[split] = ([normalise(r[0]) for _, r in rows], np.array([int(_float(path, i, r[1])) for i, r in rows]))
    return ClassificationTask("SST2", splits, "split", 2)


def _trec(data_dir: str, flag: str) -> ClassificationTask:
    splits = {}
    for split, name in (("train", "train_5500.label"), ("test", "TREC_10.label")):
        path = os.path.join(data_dir, "TREC", name)
        texts, labels = [], []
        for i, line in enumerate(_read_lines(path, flag, encoding="latin-1"), start=1):
            target, _, rest = line.strip().partition(":")
            if target not in TREC_CLASSES or " " not in rest:
                raise EvalDataError(f"{path}:{i}: expected '<CLASS>:<fine> <question>', got {line[:40]!r}")
            texts.append(normalise(rest.split(" ", 1)[1]))
            labels.append(TREC_CLASSES.index(target))
        splits[split] = (texts, np.array(labels))
    return ClassificationTask("TREC", splits, "kfold", len(TREC_CLASSES))


def _mrpc(data_dir: str, flag: str) -> ClassificationTask:
    splits = {}
    for split, name in (("train", "msr_paraphrase_train.txt"), ("test", "msr_paraphrase_test.txt")):
        path = os.path.join(data_dir, "MRPC", name)
        rows = [(i, _columns(path, i, line, 5)) for i, line in enumerate(_read_lines(path, flag, "utf-8-sig"), 1)]
        rows = rows[1:]  # header
        splits[split] = (
            [(normalise(r[3]), normalise(r[4])) for _, r in rows],
            np.array([int(_float(path, i, r[0])) for i, r in rows]),
        )
    return ClassificationTask("MRPC", splits, "kfold", 2, pairs=True)


def load_transfer_task(task: str, data_dir: str | None, flag: str = "--senteval_dir") -> ClassificationTask:
    """A SentEval transfer task from its data/downstream folder (the Hub has no faithful copies of these)."""
    if data_dir is None:
        raise EvalDataError(
            f"{task}: transfer tasks are read from SentEval's data/downstream folder; set {flag} or ${DATA_DIR_ENV}"
        )
    if task in BINARY_FILES:
        loaded = _binary(data_dir, task, flag)
    else:
        loaded = {"SST2": _sst2, "TREC": _trec, "MRPC": _mrpc}[task](data_dir, flag)
    loaded.sizes = {split: len(labels) for split, (_, labels) in loaded.splits.items()}
    return loaded
