"""tests.warm_processes, which the robustness cases run in: a command forked from a warm process ends as the same
command started afresh (exit status, stdout, stderr), and one server runs many. (The file-size limit: the
"full disk" case of tests/test_robustness.py.)"""

from tests.robustness_cases import cli_env, run_cli
from tests.warm_processes import WarmProcess


def test_a_forked_command_ends_as_a_fresh_one(tmp_path):
    commands = [
        ("run_hncse.py", ["--lerning_rate", "1e-5"]),  # an error line, exit 2
        ("hncse-plot", [str(tmp_path / "no_such_run")]),
        ("hncse-evaluate", ["--help"]),  # stdout, exit 0
    ]
    with WarmProcess(cli_env({})) as warm:
        for tool, argv in commands:
            fresh, forked = run_cli(argv, {}, tool=tool), warm.run(tool, argv)
            assert (forked.returncode, forked.stdout, forked.stderr) == (fresh.returncode, fresh.stdout, fresh.stderr)
        assert warm.run("run_hncse.py", ["--lerning_rate", "1e-5"]).returncode == 2  # the server goes on
