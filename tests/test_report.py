"""The report page: self-contained, complete, and rendered by a real browser (headless Chromium)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from likra.errors import LikraError
from likra.experiments.curve import CurveConfig, plot_curve, run_curve
from likra.models import LoadedModel
from likra.report import log_command, write_report
from likra.training import TrainConfig

from .conftest import tiny_llama


@pytest.fixture(scope="module")
def experiment(tmp_path_factory, tokenizer, tiny_model_dir, data_dir):
    folder = tmp_path_factory.mktemp("experiment")
    tiny = LoadedModel(tiny_llama(len(tokenizer)), tokenizer, "tiny", str(tiny_model_dir), "cpu", "float32")
    config = CurveConfig(train=TrainConfig(n=8, data_dir=str(data_dir)), seeds=[1], limit=4)
    rows = run_curve(tiny, tiny, config, folder, log=lambda _: None)["rows"]
    plot_curve(rows, folder / "curve.png", "tiny")
    log_command(folder, ["curve", "--max-n", "8"], 12.3)
    return folder


def test_report_embeds_figures_tables_commands_and_environment(experiment):
    html_path, md_path = write_report(experiment)
    page = html_path.read_text()
    assert page.count("data:image/png;base64,") == 2 and "src='curve.png'" not in page  # self-contained, both figures
    assert "<th>method</th>" in page and "<td>sft_calibrated</td>" in page
    assert "exact McNemar p of Likra" in page and "<td>seed 1 vs sft_calibrated</td>" in page
    assert "likra curve --max-n 8" in page and "12 s" in page
    assert "torch" in page and "transformers" in page
    markdown = md_path.read_text()
    assert "![curve](curve.png)" in markdown and "| method |" in markdown


def test_report_gathers_experiments_in_subfolders(experiment, tmp_path):
    """``likra sweep --out DIR/sweep`` beside the curve: one report for both, with both commands."""
    from .test_cli import likra

    folder = tmp_path / "experiment"
    shutil.copytree(experiment, folder)
    step = sorted(folder.glob("scores/*/seed-1/step-8.items.jsonl"))[0]
    result = likra("sweep", "--items", f"{step},{step}", "--out", str(folder / "sweep"), "--weights", "0,0.5,1")
    assert result.returncode == 0, result.stderr
    page = write_report(folder)[0].read_text()
    assert page.count("data:image/png;base64,") == 3 and "sweep (sweep/)" in page
    assert "acc_norm by weight (mean over 2 checkpoint(s))" in page
    assert "likra curve --max-n 8" in page and "likra sweep --items" in page


def test_report_of_an_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(LikraError, match="no experiment results"):
        write_report(tmp_path)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium not installed (make install adds it)")
def test_report_renders_in_headless_chromium(experiment, tmp_path):
    html_path, _ = write_report(experiment)
    browser = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000"]
    dom = subprocess.run([*browser, "--dump-dom", html_path.as_uri()], capture_output=True, text=True, timeout=120)
    widths = re.findall(r'data-width="(\d+)"', dom.stdout)
    assert widths and all(int(w) > 100 for w in widths)  # every figure decoded by the browser
    assert dom.stdout.count("<table") >= 3  # results, commands, environment
    shot = tmp_path / "report.png"
    subprocess.run([*browser, f"--screenshot={shot}", "--window-size=1200,1600", html_path.as_uri()],
                   capture_output=True, timeout=120, check=True)  # fmt: skip
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
