"""`python -m bench.gpu_check`: check the GPU path of training on this machine and write docs/gpu.md."""

from bench.gpu_check.check import main

main()
