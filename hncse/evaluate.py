"""`python -m hncse.evaluate` and the `hncse-evaluate` console script: see `hncse.evaluation.cli`."""

from hncse.evaluation.cli import cli, default_output_json, evaluate_model, main, make_parser

__all__ = ["cli", "default_output_json", "evaluate_model", "main", "make_parser"]

if __name__ == "__main__":
    cli()
