"""Command-line runs without the import cost: a process that has imported the tools forks one child per command.

Starting `python run_hncse.py` costs seconds of imports (torch, transformers, datasets, and peft, which
transformers' Trainer imports when it is installed) before the first argument is read; a robustness case then
runs for a second or two. `WarmProcess` starts `python -m tests.warm_processes` once: it imports run_hncse,
hncse-evaluate and hncse-plot, runs no tensor code, and for each command forks a child that sets `sys.argv`,
sends its stdout/stderr to files and runs the tool's entry point to its exit, as the interpreter would run the
script: the same exit status (a SystemExit's code, 1 for an uncaught exception, with its traceback on stderr),
the same atexit handlers. What a forked child cannot reproduce is what happens at import time, so a command whose
environment differs from the server's (`env`) runs in a fresh process instead (`robustness.run_cli`).

Why our own: `multiprocessing`'s forkserver runs Python functions, not a script's exit status and streams.
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def entry_points() -> dict:
    """Each tool's entry point, as its console script or `python -m` runs it."""
    import run_hncse
    from hncse.evaluation import cli as evaluate_cli
    from hncse.plots import training_curves

    return {"run_hncse.py": run_hncse.cli, "hncse-evaluate": evaluate_cli.cli, "hncse-plot": training_curves.cli}


# The exit status of the command a forked child ran; None in the server.
child_exit_status: int | None = None


def leave_without_teardown() -> None:
    """Registered before any library's atexit handler, so run after all of them: a child then skips only the
    interpreter's module teardown (about 2 s with torch loaded, nothing a command's output or files depend on)."""
    if child_exit_status is not None:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os._exit(child_exit_status)


def run_in_child(entry, prog: str, argv: list[str], stdout: str, stderr: str, file_size_limit: int | None):
    """In the forked child: become the command. Never returns: the tool's SystemExit (or an uncaught exception)
    ends the interpreter as it ends a script (its message or traceback printed, the atexit handlers run)."""
    import resource

    global child_exit_status
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(os.open(stdout, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 1)  # also closes the reply pipe here
    os.dup2(os.open(stderr, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 2)
    if file_size_limit is not None:  # a disk that fills up at that size
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))
    sys.argv = [prog, *argv]
    try:
        entry()
    except SystemExit as stop:
        code = stop.code
        child_exit_status = code if isinstance(code, int) else 0 if code is None else 1
        raise
    except BaseException:
        child_exit_status = 1  # the interpreter prints the traceback
        raise
    child_exit_status = 0
    sys.exit(0)


def serve() -> None:
    """One request per line on stdin (JSON: tool, argv, stdout, stderr, file_size_limit), one reply per line."""
    atexit.register(leave_without_teardown)  # first registered, last run
    entries = entry_points()
    replies = sys.stdout
    for line in sys.stdin:
        request = json.loads(line)
        replies.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            run_in_child(entries[request["tool"]], request["tool"], request["argv"], request["stdout"],
                         request["stderr"], request["file_size_limit"])  # fmt: skip
        _, status = os.waitpid(pid, 0)
        replies.write(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}) + "\n")
        replies.flush()


class WarmProcess:
    """A server process (`serve`); `run` is `subprocess.run([...tool, *argv], capture_output=True, text=True)` in a
    child forked from it. One command at a time: use one per thread."""

    def __init__(self, env: dict[str, str]):
        self.scratch = tempfile.TemporaryDirectory(prefix="hncse-warm-")
        self.server = subprocess.Popen(
            [sys.executable, "-m", "tests.warm_processes"], cwd=REPO, env=env, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip

    def run(self, tool: str, argv: list[str], file_size_limit: int | None = None) -> subprocess.CompletedProcess:
        stdout, stderr = (os.path.join(self.scratch.name, name) for name in ("stdout", "stderr"))
        request = {"tool": tool, "argv": argv, "stdout": stdout, "stderr": stderr, "file_size_limit": file_size_limit}
        self.server.stdin.write(json.dumps(request) + "\n")
        self.server.stdin.flush()
        reply = self.server.stdout.readline()
        if not reply:
            raise RuntimeError(f"tests.warm_processes exited ({self.server.wait()}) before answering {tool} {argv}")
        streams = [Path(path).read_text(encoding="utf-8", errors="replace") for path in (stdout, stderr)]
        return subprocess.CompletedProcess([tool, *argv], json.loads(reply)["returncode"], *streams)

    def close(self) -> None:
        self.server.stdin.close()
        self.server.wait()
        self.scratch.cleanup()

    def __enter__(self) -> WarmProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


if __name__ == "__main__":
    serve()
