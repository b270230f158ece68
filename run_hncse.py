#!/usr/bin/env python
"""Train a sentence encoder with SimCSE / HNCSE: the recipe's entry point in a checkout (`hncse-train` once the
package is installed; both are `hncse.train`).

    python run_hncse.py configs/quickstart.yaml                         # offline, CPU, a few minutes
    accelerate launch run_hncse.py configs/paper/bert-base-simcse.yaml  # the paper's setup on GPUs
    python run_hncse.py configs/quickstart.yaml --learning_rate 1e-5    # flags override the file
"""

from hncse.train import cli, main

__all__ = ["cli", "main"]

if __name__ == "__main__":
    cli("run_hncse.py")
