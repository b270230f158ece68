"""The GPU checks: `python -m bench.gpu_check` (`check.py`; its checks across processes in `multi_process.py`)."""
