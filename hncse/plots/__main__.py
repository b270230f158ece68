"""`python -m hncse.plots FOLDER`: the `hncse-plot` command without the console script (e.g. from a checkout)."""

from hncse.plots.training_curves import cli

cli()
