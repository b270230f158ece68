"""training_curves.png: drawn by every run into its folders and embedded in their cards; a run without matplotlib
still succeeds and says once why there is no picture; `hncse-plot` draws it again from trainer_state.json."""

import json
import os
import re
import sys

import pytest
from PIL import Image
from tiny_run import base_argv

import hncse.train
import hncse.training.folder_report
from hncse.losses import ContrastiveParams, Objective, Panel, SimCSELoss, Statistic, register, unregister
from hncse.plots import CURVES_NAME, draw_training_curves
from hncse.plots.training_curves import best_evaluation, cli, recorded_best_metric, training_entries
from hncse.training.output_folder import OutputFolder

EMBEDDED = f"]({CURVES_NAME})"  # the card's Markdown image


def png_size(path) -> tuple[int, int]:
    """(width, height) of a PNG that decodes whole (verify() reads every chunk and checks its CRC)."""
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.verify()
    with Image.open(path) as image:
        image.load()
        return image.size


def history(steps: int = 6, evaluate_every: int = 2, stats: tuple[str, ...] = ()) -> list[dict]:
    """A log history as the trainer writes it: step 0's evaluation, a training entry per step (loss, learning
    rate, the objective's statistics), evaluations, the closing summary and the evaluations after training."""
    entries = [{"eval_stsb_spearman": 50.0, "eval_sickr_spearman": 40.0, "eval_runtime": 1.0, "step": 0}]
    for step in range(1, steps + 1):
        entries.append({"loss": 1.0 / step, "learning_rate": 1e-3, "step": step, **{k: 0.5 for k in stats}})
        if step % evaluate_every == 0:
            score = {2: 60.0, 4: 70.0, 6: 65.0}.get(step, 55.0)
            entries.append({"eval_stsb_spearman": score, "eval_sickr_spearman": 45.0, "eval_runtime": 1.0,
                            "step": step})  # fmt: skip
    entries.append({"train_runtime": 9.0, "train_loss": 0.5, "step": steps})
    entries.append({"eval_stsb_spearman": 99.0, "eval_runtime": 1.0, "step": steps})  # the kept weights, afterwards
    return entries


@pytest.mark.parametrize(
    "stats, panels",
    [
        ((), 2),  # loss, dev sets
        (("sim_positive", "sim_hardest_negative", "sim_negative"), 3),  # + similarities
        (("sim_positive", "sim_hardest_negative", "sim_synthetic", "pm_case_a", "pm_case_b", "pm_case_c"), 4),
    ],
)
def test_a_panel_per_kind_of_value_the_run_logged(tmp_path, stats, panels):
    path = tmp_path / CURVES_NAME
    draw_training_curves(history(stats=stats), str(path), best_metric="stsb_spearman")
    # 6 × 4 inches per panel at 100 dpi, two panels a row
    assert png_size(path) == (1200, 400 * ((panels + 1) // 2))
    assert list(tmp_path.iterdir()) == [path]  # no partial file left


def drawn_panels(monkeypatch, log_history, path) -> list[tuple[str, str, list[str]]]:
    """(title, y label, legend) of each panel `draw_training_curves` draws, in order: what a reader sees."""
    from matplotlib.figure import Figure

    figures, save = [], Figure.savefig

    def keep(self, *args, **kwargs):
        figures.append(self)
        return save(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    draw_training_curves(log_history, str(path))
    (figure,) = figures
    return [
        (ax.get_title(), ax.get_ylabel(), [text.get_text() for text in ax.get_legend().get_texts()])
        for ax in figure.axes
        if ax.get_visible() and ax.get_title()  # the learning rate's twin axis has no title of its own
    ]


BUILTIN_STATISTICS = ("sim_positive", "sim_hardest_negative", "sim_negative", "sim_synthetic", "pm_case_a",
                      "pm_case_b", "pm_case_c", "pm_ratio", "loss_pm", "loss_hnm")  # fmt: skip


def test_the_builtin_objectives_statistics_are_drawn_as_declared(tmp_path, monkeypatch):
    panels = drawn_panels(monkeypatch, history(stats=BUILTIN_STATISTICS), tmp_path / CURVES_NAME)
    assert panels == [
        ("training loss", "loss", ["training loss", "learning rate"]),
        ("dev sets", "score ×100", ["sickr spearman", "stsb spearman"]),
        ("similarities in the batch", "cosine",
         ["positive", "hardest negative", "mean negative", "synthetic negatives (HNM)"]),
        ("positive mixing (PM)", "share of anchors",
         ["case A: hardest within θ of the positive", "case B: unmixed", "case C: hardest above the positive",
          "mixing ratio w2/w1"]),
    ]  # fmt: skip  # hybrid_sum's two loss terms are logged, not drawn


def test_a_plug_in_objectives_statistic_is_drawn_with_its_label(tmp_path, monkeypatch):
    """An objective registered here, outside the package: its declared statistic gets its own panel."""
    gap = Statistic("toy_gap", "positive − mean negative", Panel("toy margin", "cosine gap"))
    register(Objective("toy_plotted", SimCSELoss, ContrastiveParams, (gap,), "a toy with a statistic of its own"))
    try:
        panels = drawn_panels(monkeypatch, history(stats=("sim_positive", "toy_gap")), tmp_path / CURVES_NAME)
    finally:
        unregister("toy_plotted")
    assert [title for title, _, _ in panels] == [
        "training loss",
        "dev sets",
        "similarities in the batch",
        "toy margin",
    ]
    assert panels[-1] == ("toy margin", "cosine gap", ["positive − mean negative"])
    assert png_size(tmp_path / CURVES_NAME) == (1200, 800)
    draw_training_curves(history(stats=("toy_gap",)), str(tmp_path / "unregistered.png"))
    assert png_size(tmp_path / "unregistered.png") == (1200, 400)  # no longer declared: not drawn


def test_a_run_that_logged_nothing_yet_gets_the_loss_panel_alone(tmp_path):
    draw_training_curves([], str(tmp_path / CURVES_NAME))
    assert png_size(tmp_path / CURVES_NAME) == (600, 400)


def test_a_failed_drawing_leaves_neither_a_picture_nor_a_partial_file(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    def fail(self, *args, **kwargs):
        with open(args[0], "wb") as f:
            f.write(b"half a picture")
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", fail)
    with pytest.raises(OSError, match="disk full"):
        draw_training_curves(history(), str(tmp_path / CURVES_NAME))
    assert list(tmp_path.iterdir()) == []


def test_only_what_training_logged_is_drawn():
    entries = training_entries(history())
    assert entries[-1]["step"] == 6 and "train_runtime" not in entries[-1]
    assert not any(e.get("eval_stsb_spearman") == 99.0 for e in entries)


@pytest.mark.parametrize("greater_is_better, step", [(True, 4), (False, 2)])
def test_the_best_evaluation_is_the_trainers(greater_is_better, step):
    """The Trainer's rule: the first strictly better value after step 0 (step 0's 50.0 is never selected, even
    when lower is better)."""
    entries = [e for e in training_entries(history()) if "eval_runtime" in e]
    assert best_evaluation(entries, "stsb_spearman", greater_is_better)["step"] == step
    tie = entries + [{"eval_stsb_spearman": 70.0, "eval_runtime": 1.0, "step": 8}]
    assert best_evaluation(tie, "eval_stsb_spearman")["step"] == 4


def test_the_metric_a_saved_state_selected_by():
    state = {"log_history": history(), "best_global_step": 4, "best_metric": 70.0}
    assert recorded_best_metric(state) == "eval_stsb_spearman"
    assert recorded_best_metric({"log_history": history()}) is None


@pytest.fixture(scope="module")
def run_with_curves(tiny_model_dir, corpus_file, senteval_dir, tmp_path_factory):
    """A 4-step hybrid_sum run (all four panels) evaluated and saved every 2 steps."""
    output_dir = tmp_path_factory.mktemp("curves") / "run"
    argv = base_argv(tiny_model_dir, corpus_file, senteval_dir, output_dir)
    hncse.train.main(
        argv + ["--objective", "hybrid_sum", "--max_steps", "4", "--eval_steps", "2", "--save_steps", "2"]
    )
    return output_dir


def test_every_saved_folder_has_its_picture_and_its_card_embeds_it(run_with_curves):
    folders = [run_with_curves, run_with_curves / "checkpoint-2", run_with_curves / "checkpoint-4"]
    for folder in folders:
        assert png_size(folder / CURVES_NAME) == (1200, 800)
        card = (folder / "README.md").read_text()
        assert "## Training curves" in card and EMBEDDED in card
    assert "up to step 2," in (run_with_curves / "checkpoint-2" / "README.md").read_text()
    assert "up to step 4," in (run_with_curves / "README.md").read_text()


def test_hncse_plot_draws_it_again_from_the_saved_state(run_with_curves, tmp_path, capsys):
    cli([str(run_with_curves), "--output", str(tmp_path / "again.png")])
    assert capsys.readouterr().out.strip() == str(tmp_path / "again.png")
    # the same picture, byte for byte, as the run drew from its own log: the state keeps everything it shows
    assert (tmp_path / "again.png").read_bytes() == (run_with_curves / CURVES_NAME).read_bytes()
    state = json.loads((run_with_curves / "trainer_state.json").read_text())
    assert recorded_best_metric(state) == "eval_stsb_spearman"

    with pytest.raises(SystemExit) as exit_info:
        cli([str(tmp_path)])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    expected = f"{tmp_path}: no trainer_state.json (a run's output folder or checkpoint has one)"
    assert error == f"hncse-plot: error: {expected}\n"


def state_with(log_history) -> str:
    return json.dumps({"global_step": 6, "log_history": log_history})


ODD_STATES = {
    "not JSON": ("this is not JSON", r"trainer_state\.json: not readable JSON \(Expecting value: line 1 column 1"),
    "cut short": (state_with(history())[:100], r"trainer_state\.json: not readable JSON \("),
    "not an object": ("[1, 2]", r"trainer_state\.json: not a JSON object"),
    "no log_history": ('{"global_step": 6}', r"trainer_state\.json: no log_history \("),
    "empty log_history": (state_with([]), r"trainer_state\.json: log_history is empty"),
    "log_history not a list": ('{"log_history": {"loss": 1}}', r"log_history is not a list of entries"),
    "no loss": (state_with([{"learning_rate": 0.1, "step": 1}, {"step": 2}]),
                r"trainer_state\.json: no entry of its log_history \(2 logged while training\) has a loss or a dev"),
    "a loss that is not a number": (state_with([{"loss": "high", "step": 1}]),
                                    r"log_history entry 0 has loss 'high', not a number"),
}  # fmt: skip


@pytest.mark.parametrize("case", ODD_STATES)
def test_hncse_plot_on_a_state_it_cannot_draw_is_one_line_naming_the_file(tmp_path, capsys, case):
    text, message = ODD_STATES[case]
    (tmp_path / "trainer_state.json").write_text(text, encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        cli([str(tmp_path)])
    error = capsys.readouterr().err
    assert exit_info.value.code == 2 and error.count("\n") == 1, error
    assert error.startswith(f"hncse-plot: error: {tmp_path / 'trainer_state.json'}: ") and re.search(message, error)
    assert list(tmp_path.iterdir()) == [tmp_path / "trainer_state.json"]  # no picture, no partial file


def test_hncse_plot_on_a_path_or_an_output_it_cannot_use_is_one_line(tmp_path, capsys, monkeypatch):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "trainer_state.json").write_text(state_with(history()), encoding="utf-8")
    (tmp_path / "a-file").write_text("", encoding="utf-8")
    cases = [
        ([str(tmp_path / "nowhere")], f"{tmp_path / 'nowhere'}: no such folder"),
        ([str(tmp_path / "a-file")], f"{tmp_path / 'a-file'}: not a folder"),
        ([str(tmp_path / "run"), "-o", str(tmp_path / "no" / "c.png")],
         f"{tmp_path / 'no' / 'c.png'}: the picture cannot be written there (no folder {tmp_path / 'no'}; "),
        ([str(tmp_path / "run"), "-o", str(tmp_path / "a-file" / "c.png")],
         f"{tmp_path / 'a-file' / 'c.png'}: the picture cannot be written there (no folder"),
        ([str(tmp_path / "run"), "-o", str(tmp_path)], f"{tmp_path}: the picture cannot be written there ("),
    ]  # fmt: skip
    for argv, message in cases:
        with pytest.raises(SystemExit) as exit_info:
            cli(argv)
        error = capsys.readouterr().err
        assert exit_info.value.code == 2 and error.count("\n") == 1, error
        assert error.startswith(f"hncse-plot: error: {message}"), error
    if os.geteuid() != 0:  # root writes anywhere
        (tmp_path / "run").chmod(0o555)
        try:
            with pytest.raises(SystemExit):
                cli([str(tmp_path / "run")])
        finally:
            (tmp_path / "run").chmod(0o755)
        assert "training_curves.png: the picture cannot be written there (Permission denied" in capsys.readouterr().err
    from matplotlib.figure import Figure

    def disk_full(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", disk_full)
    with pytest.raises(SystemExit):
        cli([str(tmp_path / "run")])
    expected = (
        f"{tmp_path / 'run' / CURVES_NAME}: the picture could not be written ([Errno 28] No space left on device)"
    )
    assert capsys.readouterr().err == f"hncse-plot: error: {expected}\n"
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["trainer_state.json"]


def test_the_hncse_plot_command_prints_one_line_and_no_traceback(tmp_path):
    """The console script itself (pyproject.toml's entry point), through `hncse.errors.run_cli`."""
    import shutil
    import subprocess

    (tmp_path / "trainer_state.json").write_text('{"log_history": [{"loss": 0.5, "st', encoding="utf-8")
    command = shutil.which("hncse-plot", path=os.path.dirname(sys.executable)) or "hncse-plot"
    done = subprocess.run([command, str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 2 and done.stdout == "", done.stderr
    assert done.stderr.startswith(f"hncse-plot: error: {tmp_path / 'trainer_state.json'}: not readable JSON (")
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def logged(stderr: str, text: str) -> list[str]:
    """The log lines of a run (run_hncse logs to stderr) that contain `text`, without their time and level."""
    return [line.split(": ", 1)[1] for line in stderr.splitlines() if text in line]


def test_a_run_without_matplotlib_succeeds_and_says_once_why_there_is_no_picture(
    tiny_model_dir, corpus_file, senteval_dir, tmp_path, monkeypatch, capsys
):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` raises ImportError
    output_dir = tmp_path / "run"
    output_dir.mkdir()
    (output_dir / CURVES_NAME).write_bytes(b"an earlier run's picture")
    OutputFolder(str(output_dir)).sweep()  # written by an earlier hncse run  # would be embedded in this run's card
    hncse.train.main(base_argv(tiny_model_dir, corpus_file, senteval_dir, output_dir))  # 3 checkpoints, 1 final folder
    printed = capsys.readouterr()
    said = logged(printed.err, CURVES_NAME)
    assert f"Saved to {output_dir}\n" in printed.out  # and no picture named
    assert said == [f'no {CURVES_NAME} is drawn: matplotlib is not installed (pip install "hncse[plots]" draws them)']
    assert not list(output_dir.rglob(CURVES_NAME))  # the earlier run's picture is gone too
    assert "Training curves" not in (output_dir / "README.md").read_text()
    assert (output_dir / "model.safetensors").is_file() and (output_dir / "checkpoint-3").is_dir()

    with pytest.raises(SystemExit) as exit_info:
        cli([str(output_dir)])
    assert exit_info.value.code == 1 and "matplotlib is not installed" in capsys.readouterr().err


def test_a_picture_that_fails_is_a_warning_and_the_checkpoints_are_kept(
    tiny_model_dir, corpus_file, senteval_dir, tmp_path, monkeypatch, capsys
):
    def fail(*args, **kwargs):
        raise RuntimeError("no font found\nmore detail")

    monkeypatch.setattr(hncse.training.folder_report, "draw_training_curves", fail)
    output_dir = tmp_path / "run"
    output_dir.mkdir()
    (output_dir / CURVES_NAME).write_bytes(b"an earlier run's picture")
    OutputFolder(str(output_dir)).sweep()  # written by an earlier hncse run
    # Every save resumable: checkpoints 1-3 are written whatever the dev curve (only new bests would be otherwise).
    hncse.train.main(base_argv(tiny_model_dir, corpus_file, senteval_dir, output_dir) + ["--resume_state_steps", "1"])
    warned = logged(capsys.readouterr().err, "was not drawn")
    assert len(warned) == 4  # checkpoints 1-3 and the final folder
    assert warned[-1] == f"{output_dir / CURVES_NAME} was not drawn: no font found"
    assert all((folder / "model.safetensors").is_file() for folder in (output_dir, output_dir / "checkpoint-3"))
    assert not list(output_dir.rglob(CURVES_NAME))
