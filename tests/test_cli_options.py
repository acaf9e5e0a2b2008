"""likra.cli_options: options derived from config fields, defaults and help written once."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import typer
from typer.testing import CliRunner

import likra.cli
from likra.cli_options import config_options
from likra.errors import LikraError
from likra.experiments.curve import CurveConfig
from likra.options import option
from likra.training import TrainConfig


@dataclass
class Toy:
    rate: float = option(0.5, "How fast.")
    name: str | None = option(None, "Who.", flags=("--who",))
    sizes: list[int] = option(factory=lambda: [1, 2], help="Sizes, comma-separated.")
    loud: bool = option(False, "Shout.")


def toy_app(seen: list) -> typer.Typer:
    app = typer.Typer()

    @app.command()
    @config_options(Toy, help={"rate": "How fast, here."})
    def run(out: str, config: Toy, extra: int = 3) -> None:
        seen.append((out, config, extra))

    return app


def test_options_take_the_fields_defaults_help_and_names():
    seen: list = []
    app, runner = toy_app(seen), CliRunner()
    assert runner.invoke(app, ["o"]).exit_code == 0
    assert seen[-1] == ("o", Toy(), 3)
    result = runner.invoke(app, ["o", "--rate", "2", "--who", "me", "--sizes", "4, 5", "--loud", "--extra", "1"])
    assert result.exit_code == 0, result.output
    assert seen[-1] == ("o", Toy(rate=2.0, name="me", sizes=[4, 5], loud=True), 1)
    shown = runner.invoke(app, ["--help"], terminal_width=200).output
    assert "How fast, here." in shown and "Sizes, comma-separated." in shown and "--who" in shown
    assert "1,2" in shown  # a list's default, as it would be typed


def test_a_bad_list_names_its_option():
    with pytest.raises(LikraError, match="--sizes 1,x: expected comma-separated whole numbers"):
        CliRunner().invoke(toy_app([]), ["o", "--sizes", "1,x"], catch_exceptions=False)


def test_two_options_of_one_name_are_refused():
    def run(config: Toy, rate: float = 1.0) -> None: ...

    with pytest.raises(TypeError, match="two options named"):
        config_options(Toy)(run)


def test_the_cli_builds_the_apis_default_configs(monkeypatch, tmp_path):
    """With no options, `likra train` and `likra curve` hand the API exactly its own default configs."""
    seen = {}

    def stop(name):
        def record(*args, **kwargs):
            seen[name] = kwargs.get("config", args[0] if args else None)
            raise typer.Exit(0)

        return record

    monkeypatch.delenv("LIKRA_DATA_DIR", raising=False)  # it would fill --data-dir
    monkeypatch.setattr("likra.training.run_training", stop("train"))
    monkeypatch.setattr("likra.experiments.curve.curve_experiment", stop("curve"))
    runner = CliRunner()
    assert runner.invoke(likra.cli.app, ["train", "--out", str(tmp_path)]).exit_code == 0
    assert seen["train"] == TrainConfig()
    assert runner.invoke(likra.cli.app, ["curve", "--out", str(tmp_path)]).exit_code == 0
    assert seen["curve"] == CurveConfig(train=TrainConfig(n=1024))  # --max-n's default is the curve's largest N
