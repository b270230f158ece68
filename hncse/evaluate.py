"""The documented command `python -m hncse.evaluate` (and import path). The code is `hncse.evaluation.cli`, which the
`hncse-evaluate` console script runs."""

from hncse.evaluation.cli import cli, default_output_json, evaluate_model, main, make_parser

__all__ = ["cli", "default_output_json", "evaluate_model", "main", "make_parser"]

if __name__ == "__main__":
    cli()
