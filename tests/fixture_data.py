"""Generated stand-ins for SimCSE's data, in the exact files and formats `hncse.evaluation.senteval_data` reads.

The unit tests need a few hundred sentences, scored pairs and small labelled sets, not the real ones. Generated
here from a fixed lexicon with seeded generators, they are byte for byte the same on every machine, whether or not
SentEval's data and the wiki1m sample lie in ../shared/data, so no result depends on what a machine holds. Only
the tests of the real sets' own counts read those (conftest's `real_data`).

Every word comes from the lexicon below, so the tiny tokenizer's vocabulary (built from these files) covers every
generated sentence and the sentences the tests write themselves ("a man is playing a guitar .").
"""

from __future__ import annotations

import random
import re
from pathlib import Path

from hncse.evaluation.senteval_data import STS_YEARS, TREC_CLASSES

# ---- the lexicon -------------------------------------------------------------------------------------------

# Captions (STS-B, SICK, STS12–16): subject, action, object and place, as in MSRvid or SICK.
SUBJECTS = {  # noun: (plural, a near synonym)
    "man": ("men", "person"), "woman": ("women", "lady"), "child": ("children", "kid"), "boy": ("boys", "kid"),
    "girl": ("girls", "child"), "dog": ("dogs", "puppy"), "cat": ("cats", "kitten"), "player": ("players", "man"),
    "chef": ("chefs", "cook"), "musician": ("musicians", "player"), "person": ("people", "human"),
    "horse": ("horses", "pony"), "kid": ("kids", "child"), "lady": ("ladies", "woman"), "puppy": ("puppies", "dog"),
    "kitten": ("kittens", "cat"), "cook": ("cooks", "chef"), "human": ("humans", "person"),
    "pony": ("ponies", "horse"),
}  # fmt: skip
VERBS = {  # base form: (third person, -ing form, objects it takes; none: intransitive)
    "play": ("plays", "playing", ["a guitar", "a flute", "the piano", "music", "an instrument", "ball", "the drums"]),
    "slice": ("slices", "slicing", ["an onion", "a potato", "a tomato", "some bread", "a carrot"]),
    "cook": ("cooks", "cooking", ["food", "rice", "some meat", "an egg", "dinner"]),
    "ride": ("rides", "riding", ["a horse", "a bike", "a motorbike", "a bicycle", "a wave"]),
    "eat": ("eats", "eating", ["food", "an apple", "some bread", "a banana", "dinner"]),
    "hold": ("holds", "holding", ["a ball", "a cup", "a baby", "a flag", "a book"]),
    "carry": ("carries", "carrying", ["a bag", "a box", "a baby", "some wood", "a flag"]),
    "read": ("reads", "reading", ["a book", "a letter", "the news", "a map"]),
    "cut": ("cuts", "cutting", ["a tree", "the grass", "some paper", "an onion"]),
    "throw": ("throws", "throwing", ["a ball", "a stick", "a rock", "a frisbee"]),
    "run": ("runs", "running", None), "sleep": ("sleeps", "sleeping", None), "dance": ("dances", "dancing", None),
    "swim": ("swims", "swimming", None), "jump": ("jumps", "jumping", None), "walk": ("walks", "walking", None),
    "sit": ("sits", "sitting", None), "smile": ("smiles", "smiling", None),
}  # fmt: skip
PLACES = ["in the park", "on the mat", "in the field", "on the beach", "in the kitchen", "on the street",
          "in the water", "near the river", "on a stage", "in the snow", "through the field", "at home",
          "with a ball", "with a friend"]  # fmt: skip
ADJECTIVES = ["young", "old", "small", "tall", "little", "black", "white", "brown", "happy", "skilled"]
EXTRA_CAPTIONS = [  # short captions of other forms, as the tests write some of theirs
    "the sun is shining .", "it rains .", "a car drives .", "the sun is up .", "nobody eats .",
    "someone plays music .", "animals are running .", "a kid has food .", "the cat sat on the mat .",
    "someone is cooking food .", "the dogs sleep .",
]  # fmt: skip

# Wikipedia-like sentences (wiki1m): names, places, years, clauses.
FIRST_NAMES = ["John", "Mary", "Peter", "Anna", "James", "Laura", "Thomas", "Helen", "Robert", "Clara", "David",
               "Emma", "George", "Alice", "Henry", "Julia", "Samuel", "Rose", "Walter", "Ellen"]  # fmt: skip
SURNAMES = ["Hargrove", "Sanders", "Whitfield", "Marlow", "Ashby", "Kendall", "Porter", "Lindqvist", "Moreau",
            "Baxter", "Okafor", "Delgado", "Novak", "Fischer", "Tanaka", "Ruiz"]  # fmt: skip
TOWNS = ["Norton", "Ashford", "Millbrook", "Denton", "Riverside", "Kingsley", "Eastwood", "Brackley", "Fairview",
         "Halden", "Westport", "Stanmore"]  # fmt: skip
REGIONS = ["Texas", "Ontario", "Bavaria", "Yorkshire", "Normandy", "Victoria", "Ohio", "Galicia"]
RIVERS = ["Avon", "Tamar", "Elbe", "Loire", "Severn", "Ouse"]
BUILDINGS = ["church", "bridge", "station", "library", "school", "museum", "castle", "theatre", "mill", "arena"]
TEAMS = ["United", "Rovers", "Athletic", "City", "Wanderers", "Albion"]
JOBS = ["politician", "footballer", "painter", "singer", "novelist", "engineer", "actor", "historian", "coach"]
YEARS = [str(year) for year in range(1890, 2020, 7)]
NUMBERS = ["2", "3", "4", "5", "12", "15", "20", "40", "100"]

# Opinions, questions and product reviews (transfer tasks).
POSITIVE = ["good", "great", "charming", "wonderful", "moving", "funny", "clever", "beautiful", "excellent"]
NEGATIVE = ["bad", "dull", "boring", "awful", "weak", "tedious", "clumsy", "ugly", "terrible"]
ADVERBS = ["very", "often", "really", "quite", "always", "truly"]
FILMS = ["the film", "this movie", "the story", "the plot", "the ending", "the cast", "the script"]
PRODUCTS = ["the camera", "the phone", "the player", "the battery", "the screen", "the remote", "this router"]
FACTS = ["the movie begins in {year} when a young {subject} named {first} leaves {town} .",
         "{first} , a {job} from {town} , returns home after {number} years .",
         "the story follows a {subject} who lives near the {river} river .",
         "in {year} , the {building} of {town} is sold to a {job} .",
         "a {job} and a {subject} travel from {town} to {region} ."]  # fmt: skip
OPINIONS = ["i think it is {adverb} {polar} .", "a {polar} and {polar2} film .", "it is {adverb} {polar} to watch .",
            "what a {polar} idea .", "the acting is {adverb} {polar} ."]  # fmt: skip
MPQA_POSITIVE = ["welcomed", "are also being encouraged", "praised", "supported the plan", "hope", "agreed",
                 "was pleased", "will help", "admired"]  # fmt: skip
MPQA_NEGATIVE = ["criticized", "had to fear", "rejected", "condemned the plan", "threat", "refused", "was angry",
                 "will hurt", "blamed"]  # fmt: skip
QUESTIONS = {  # TREC class: (fine label, question templates)
    "ABBR": ("abb", ["What does {upper} stand for ?", "What is the abbreviation for the {town} {building} ?"]),
    "DESC": ("manner", ["How did the {building} of {town} develop ?", "Why does a {subject} like {object} ?"]),
    "ENTY": ("other", ["What {object_noun} did {first} {surname} use ?", "What is the name of the {river} river ?"]),
    "HUM": ("ind", ["Who built the {building} in {town} ?", "Who was the first {job} of {region} ?"]),
    "LOC": ("city", ["Where is the {building} of {town} ?", "What city lies on the {river} river ?"]),
    "NUM": ("date", ["When was the {building} of {town} built ?", "How many {plural} live in {town} ?"]),
}  # fmt: skip
ACRONYMS = ["NASA", "BBC", "UN", "FBI", "NATO", "UNESCO"]

TOKEN = re.compile(r"[a-z]+|[0-9]+|[^\sa-z0-9]")  # the tiny tokenizer's word level (conftest.tiny_model_dir)


def words(text: str) -> list[str]:
    """The tiny tokenizer's words of a text (lower-cased, punctuation apart)."""
    return TOKEN.findall(text.lower())


# ---- sentences ---------------------------------------------------------------------------------------------


def caption(rng: random.Random) -> dict:
    """A caption as its parts (so that a pair can change some of them): subject, verb, object, place, form."""
    verb = rng.choice(sorted(VERBS))
    objects = VERBS[verb][2]
    thing = rng.choice(objects) if objects else None
    return {
        "plural": rng.random() < 0.2,
        "definite": rng.random() < 0.2,
        "progressive": rng.random() < 0.7,
        "adjective": rng.choice(ADJECTIVES) if rng.random() < 0.4 else None,
        "subject": rng.choice(sorted(SUBJECTS)),
        "verb": verb,
        "object": thing,
        "place": rng.choice(PLACES) if thing is None or rng.random() < 0.4 else None,
    }


def render_caption(parts: dict) -> str:
    """ "a man is playing a guitar .", "two dogs run in the park .", "the old cat sits on the mat ." """
    plural, noun = parts["plural"], SUBJECTS[parts["subject"]][0] if parts["plural"] else parts["subject"]
    if parts["definite"]:
        article = "the"
    else:
        article = "two" if plural else "an" if (parts["adjective"] or noun)[0] in "aeiou" else "a"
    third, ing, _ = VERBS[parts["verb"]]
    if parts["progressive"]:
        verb = ["are" if plural else "is", ing]
    else:
        verb = [parts["verb"] if plural else third]
    return " ".join(w for w in [article, parts["adjective"], noun, *verb, parts["object"], parts["place"]] if w) + " ."


def scored_pair(rng: random.Random) -> tuple[str, str, float]:
    """Two captions and a similarity in [0, 5] that falls with what the second one changed (ties included)."""
    first = caption(rng)
    if rng.random() < 0.15:  # unrelated
        return render_caption(first), render_caption(caption(rng)), rng.choice([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    second, score = dict(first), 5.0
    synonym = SUBJECTS[first["subject"]][1]
    changes = [
        ("subject", 2.0, lambda: synonym if rng.random() < 0.5 else rng.choice(sorted(SUBJECTS))),
        ("adjective", 0.4, lambda: rng.choice([None, *ADJECTIVES])),
        ("object", 1.5, lambda: rng.choice(VERBS[first["verb"]][2]) if first["object"] else None),
        ("place", 0.6, lambda: rng.choice([None, *PLACES])),
        ("plural", 0.8, lambda: not first["plural"]),
        ("progressive", 0.2, lambda: not first["progressive"]),
    ]
    for key, cost, change in changes:
        if rng.random() < 0.35:
            second[key] = change()
            if second[key] != first[key]:
                score -= cost
    if second["subject"] == synonym:
        score += 1.2  # a near synonym costs little
    score = min(5.0, max(0.0, score + rng.choice([-0.25, 0.0, 0.0, 0.25])))
    return render_caption(first), render_caption(second), score


def scored_pairs(rng: random.Random, n: int) -> list[tuple[str, str, float]]:
    """n distinct scored pairs of two different captions: a pair of equal sentences (cosine 1 up to rounding), or
    the same pair twice, would rank by the last bits of a float where the gold scores differ."""
    out, seen = [], set()
    while len(out) < n:
        a, b, score = scored_pair(rng)
        if a != b and (a, b) not in seen:
            seen.add((a, b))
            out.append((a, b, score))
    return out


def wiki_sentence(rng: random.Random) -> str:
    """One Wikipedia-like sentence: cased, punctuation attached to words, 5 to about 60 words."""
    name = f"{rng.choice(FIRST_NAMES)} {rng.choice(SURNAMES)}"
    town, region, year = rng.choice(TOWNS), rng.choice(REGIONS), rng.choice(YEARS)
    building, river = rng.choice(BUILDINGS), rng.choice(RIVERS)
    openings = [
        f"{name} is a {rng.choice(JOBS)}",
        f"{name} was born in {town}, {region} in {year}",
        f"The {building} of {town} was built in {year}",
        f"{town} is a small town on the {river} River in {region}",
        f"In {year}, {name} moved to {town}",
        f"{name} played for {town} {rng.choice(TEAMS)} between {year} and {rng.choice(YEARS)}",
        f"The {rng.choice(ADJECTIVES)} {building} ({year}) stands near the {river}",
        f"{name} ({year}) was an American {rng.choice(JOBS)}",
    ]
    clauses = [
        f"and it was opened in {rng.choice(YEARS)}",
        f"where {rng.choice(['he', 'she', 'they'])} worked as a {rng.choice(JOBS)} for {rng.choice(NUMBERS)} years",
        f"which is {rng.choice(NUMBERS)} kilometres from {rng.choice(TOWNS)}",
        f"before {rng.choice(['he', 'she'])} became the {rng.choice(JOBS)} of {rng.choice(TOWNS)} {rng.choice(TEAMS)}",
        f"although the old {rng.choice(BUILDINGS)} was later destroyed by a fire",
        f"and the {rng.choice(BUILDINGS)} has been a museum since {rng.choice(YEARS)}",
        f"while {rng.choice(FIRST_NAMES)} studied history at the school in {rng.choice(TOWNS)}",
    ]
    text = rng.choice(openings)
    for clause in rng.sample(clauses, rng.choice([0, 0, 1, 1, 2, 3, 5])):
        text += ("; " if rng.random() < 0.2 else ", ") + clause
    return re.sub(r"\ba ([AEIOUaeiou])", r"an \1", text) + "."


def distinct(make, n: int, rng: random.Random, prefix: int = 7) -> list[str]:
    """n sentences from `make` whose first `prefix` words differ: no two are equal, nor truncated alike (equal
    vectors would tie exactly in a top-k or a maximum)."""
    out, seen = [], set()
    while len(out) < n:
        sentence = make(rng)
        key = tuple(words(sentence)[:prefix])
        if key not in seen:
            seen.add(key)
            out.append(sentence)
    return out


def wiki_sentences(n: int = 400, seed: int = 0) -> list[str]:
    """The wiki1m stand-in: n distinct sentences; the first n of a longer list are the same sentences."""
    return distinct(wiki_sentence, n, random.Random(f"wiki-{seed}"))


# ---- SentEval's data/downstream layout ---------------------------------------------------------------------


def _fill(template: str, rng: random.Random) -> str:
    subject = rng.choice(sorted(SUBJECTS))
    thing = rng.choice(VERBS[rng.choice(["play", "eat", "hold", "read"])][2])
    polar = rng.choice(POSITIVE + NEGATIVE)
    text = template.format(
        year=rng.choice(YEARS), subject=subject, plural=SUBJECTS[subject][0], first=rng.choice(FIRST_NAMES),
        surname=rng.choice(SURNAMES), town=rng.choice(TOWNS), region=rng.choice(REGIONS), river=rng.choice(RIVERS),
        job=rng.choice(JOBS), number=rng.choice(NUMBERS), building=rng.choice(BUILDINGS), object=thing,
        object_noun=thing.split()[-1], upper=rng.choice(ACRONYMS), adverb=rng.choice(ADVERBS), polar=polar,
        polar2=rng.choice(POSITIVE if polar in POSITIVE else NEGATIVE),
    )  # fmt: skip
    return re.sub(r"\ba ([aeiou])", r"an \1", text)


def _opinion(rng: random.Random, positive: bool, things: list[str]) -> str:
    polar = POSITIVE if positive else NEGATIVE
    forms = [
        f"{rng.choice(things)} is {rng.choice(ADVERBS)} {rng.choice(polar)} .",
        f"{rng.choice(things)} is {rng.choice(polar)} and {rng.choice(polar)} .",
        f"it 's a {rng.choice(polar)} and {rng.choice(ADVERBS)} {rng.choice(polar)} journey .",
        f"{rng.choice(things)} works , but {rng.choice(things)} is {rng.choice(polar)} .",
        f"{rng.choice(polar)} , {rng.choice(polar)} and {rng.choice(['long', 'short', 'loud', 'quiet'])} .",
    ]
    return rng.choice(forms)


def _lines(path: Path, lines: list[str], encoding: str = "utf-8", bom: bool = False) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + "".join(line + "\n" for line in lines).encode(encoding))
    return len(lines)


def write_senteval(root: Path, seed: int = 0, pairs: int = 24, dev_pairs: int = 80, examples: int = 40) -> dict:
    """SentEval's data/downstream layout under root: STS12–16 (every subset SentEval reads; STS15/16 with unscored
    lines, whose gold line is empty; STS13's SMT gold file without its input, as in every SentEval copy), STS-B and
    SICK (train/dev/test), MR, CR, SUBJ, MPQA, SST-2, TREC and MRPC (with its byte-order mark and header).

    pairs: lines per STS12–16 subset and per STS-B/SICK train and test file; dev_pairs: STS-B dev and SICK trial;
    examples: lines per transfer file. Returns what was written, counted here and not by the loaders: scored pairs
    per STS subset and split, examples per transfer task split.
    """
    rng = random.Random(f"senteval-{seed}")
    root = Path(root)
    counts = {}
    for year, subsets in STS_YEARS.items():
        folder = root / "STS" / f"{year}-en-test"
        for subset in subsets:
            inputs, gold = [], []
            for i, (a, b, score) in enumerate(scored_pairs(rng, pairs)):
                inputs.append(f"{a}\t{b}")
                unscored = year in ("STS15", "STS16") and i % 3 == 1
                gold.append("" if unscored else f"{score:.2f}".rstrip("0").rstrip("."))
            _lines(folder / f"STS.input.{subset}.txt", inputs)
            _lines(folder / f"STS.gs.{subset}.txt", gold)
            counts[f"{year}/{subset}"] = sum(1 for g in gold if g)
        if year == "STS13":
            _lines(folder / "STS.gs.SMT.txt", [f"{scored_pair(rng)[2]:.1f}" for _ in range(pairs)])
    for split, name in (("train", "sts-train.csv"), ("dev", "sts-dev.csv"), ("test", "sts-test.csv")):
        n = dev_pairs if split == "dev" else pairs
        extra = [(text, render_caption(caption(rng)), 0.4) for text in EXTRA_CAPTIONS] if split == "train" else []
        rows = []
        for i, (a, b, score) in enumerate([*extra, *scored_pairs(rng, n - len(extra))]):
            rows.append(f"main-captions\tMSRvid\t2012{split}\t{i:04d}\t{score:.3f}\t{a}\t{b}")
        counts[f"STSBenchmark/{split}"] = _lines(root / "STS" / "STSBenchmark" / name, rows)
    for split, name in (("train", "SICK_train.txt"), ("dev", "SICK_trial.txt"), ("test", "SICK_test_annotated.txt")):
        n = dev_pairs if split == "dev" else pairs
        rows = ["pair_ID\tsentence_A\tsentence_B\trelatedness_score\tentailment_judgment"]
        for i, (a, b, score) in enumerate(scored_pairs(rng, n)):
            relatedness = 1 + 4 * score / 5
            judgment = "ENTAILMENT" if relatedness > 4 else "NEUTRAL" if relatedness > 2.5 else "CONTRADICTION"
            sick = [s[:-2].capitalize() for s in (a, b)]  # SICK: capitalised, no final full stop
            rows.append(f"{2 * i + 4}\t{sick[0]}\t{sick[1]}\t{relatedness:.1f}\t{judgment}")
        counts[f"SICKRelatedness/{split}"] = _lines(root / "SICK" / name, rows) - 1
    binary = {
        "MR": ("rt-polarity.pos", "rt-polarity.neg", lambda positive: _opinion(rng, positive, FILMS)),
        "CR": ("custrev.pos", "custrev.neg", lambda positive: _opinion(rng, positive, PRODUCTS)),
        "SUBJ": ("subj.objective", "subj.subjective",
                 lambda objective: _fill(rng.choice(FACTS if objective else OPINIONS), rng)),
        "MPQA": ("mpqa.pos", "mpqa.neg", lambda positive: rng.choice(MPQA_POSITIVE if positive else MPQA_NEGATIVE)),
    }  # fmt: skip
    for task, (first, second, make) in binary.items():
        n = sum(_lines(root / task / name, [make(label) for _ in range(examples)], "latin-1")
                for name, label in ((first, True), (second, False)))  # fmt: skip
        counts[task] = {"train": n}
    sst = {}
    for split, name in (("train", "sentiment-train"), ("dev", "sentiment-dev"), ("test", "sentiment-test")):
        labels = [i % 2 for i in range(examples)]
        rows = [f"{_opinion(rng, bool(label), FILMS)}\t{label}" for label in labels]
        sst[split] = _lines(root / "SST" / "binary" / name, rows)
    counts["SST2"] = sst
    trec = {}
    for split, name in (("train", "train_5500.label"), ("test", "TREC_10.label")):
        rows = []
        for i in range(examples):
            target = TREC_CLASSES[i % len(TREC_CLASSES)]
            fine, templates = QUESTIONS[target]
            rows.append(f"{target}:{fine} {_fill(rng.choice(templates), rng)}")
        trec[split] = _lines(root / "TREC" / name, rows, "latin-1")
    counts["TREC"] = trec
    mrpc = {}
    for split, name in (("train", "msr_paraphrase_train.txt"), ("test", "msr_paraphrase_test.txt")):
        rows = ["Quality\t#1 ID\t#2 ID\t#1 String\t#2 String"]
        for i, (a, b, score) in enumerate(scored_pairs(rng, examples - 1)):
            rows.append(f"{int(score >= 3.5)}\t{100000 + 2 * i}\t{100001 + 2 * i}\t{a}\t{b}")
        mrpc[split] = _lines(root / "MRPC" / name, rows, "utf-8", bom=True) - 1
    counts["MRPC"] = mrpc
    return counts


def covered_text(root: Path) -> str:
    """The text of every file under root (a vocabulary built over it covers them all)."""
    return "".join(path.read_text(encoding="utf-8-sig") for path in sorted(root.rglob("*")) if path.is_file())
