"""What a row of the training data is, read from its columns: one sentence, or an (anchor, positive) pair with
K ≥ 0 given hard negatives.

`--text_column` (or a single text column) → one sentence per row; `sent0, sent1[, hard_neg]` (SimCSE's NLI file) or
`anchor, positive[, negative | negative_1, negative_2, …]` (sentence-transformers' datasets) → pairs or triplets;
`--anchor_column`, `--positive_column` and `--negative_columns` name other columns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hncse.errors import DataError

# Column names that make a table pairs or triplets without flags: (anchor, positive, negatives).
NAMED_SHAPES = (("sent0", "sent1", ("hard_neg",)), ("anchor", "positive", ("negative",)))


NUMBERED_NEGATIVE = re.compile(r"negative_(\d+)$")  # sentence-transformers' negative_1, negative_2, …


ANCHOR, POSITIVE = "anchor", "positive"  # the columns of a prepared labelled dataset, then negative_1..K


@dataclass(frozen=True)
class DataShape:
    """Which columns are trained on: one text column, or an anchor, a positive and K ≥ 0 given hard negatives."""

    text: str | None = None
    anchor: str | None = None
    positive: str | None = None
    negatives: tuple[str, ...] = ()

    @property
    def labelled(self) -> bool:
        return self.anchor is not None

    @property
    def columns(self) -> tuple[str, ...]:
        """The source columns, in the order of the prepared dataset's (anchor, positive, negative_1, …)."""
        return (self.anchor, self.positive, *self.negatives) if self.labelled else (self.text,)

    @property
    def kind(self) -> str:
        if not self.labelled:
            return "sentences"
        if not self.negatives:
            return "pairs"
        return "triplets" if len(self.negatives) == 1 else "tuples"  # an anchor, a positive and K ≥ 2 negatives

    def describe(self) -> str:
        """E.g. `triplets (anchor: sent0, positive: sent1, hard negative: hard_neg)`."""
        if not self.labelled:
            return f"one sentence per row (column {self.text!r})"
        parts = [f"anchor: {self.anchor}", f"positive: {self.positive}"]
        if self.negatives:
            parts.append(f"hard negative{'s' if len(self.negatives) > 1 else ''}: {', '.join(self.negatives)}")
        return f"{self.kind} ({', '.join(parts)})"


def numbered_negatives(columns: list[str]) -> list[str]:
    """negative_1, negative_2, … present, in number order."""
    found = [(int(m.group(1)), c) for c in columns if (m := NUMBERED_NEGATIVE.match(c))]
    return [c for _, c in sorted(found)]


def data_shape(
    columns: list[str],
    source: str,
    text_column: str | None = None,
    anchor_column: str | None = None,
    positive_column: str | None = None,
    negative_columns: list[str] | None = None,
) -> DataShape:
    """The shape the flags name, else the one the column names tell, else one sentence per row (text column picked
    by `hncse.data.files.pick_text_column`: returned here as None)."""
    named = [f for f, v in (("--anchor_column", anchor_column), ("--positive_column", positive_column)) if v]
    if text_column is not None:
        if named or negative_columns:
            flags = ", ".join(named + (["--negative_columns"] if negative_columns else []))
            raise DataError(f"--text_column trains on one sentence per row; it cannot go with {flags}")
        return DataShape(text=text_column)
    anchor, positive, negatives = anchor_column, positive_column, None
    if not (anchor and positive):
        for default_anchor, default_positive, default_negatives in NAMED_SHAPES:
            if {anchor or default_anchor, positive or default_positive} <= set(columns):
                anchor, positive = anchor or default_anchor, positive or default_positive
                negatives = [c for c in default_negatives if c in columns] + numbered_negatives(columns)
                break
    if not (anchor and positive):
        if named or negative_columns:
            raise DataError(
                f"{source}: pairs need an anchor and a positive column: give both --anchor_column and "
                f"--positive_column (columns are {columns})"
            )
        return DataShape()  # one sentence per row
    negatives = list(negative_columns) if negative_columns is not None else (negatives or [])
    for flag, column in [("--anchor_column", anchor), ("--positive_column", positive)] + [
        ("--negative_columns", c) for c in negatives
    ]:
        if column not in columns:
            raise DataError(f"{source}: no column {column!r} ({flag}); columns are {columns}")
    used = [anchor, positive, *negatives]
    if len(set(used)) < len(used):
        raise DataError(f"{source}: a column is named twice among anchor, positive and negatives ({used})")
    return DataShape(anchor=anchor, positive=positive, negatives=tuple(negatives))
