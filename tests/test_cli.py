"""The command line itself: KEY=VALUE options, generic executor options (-X), plugin parameters, one-line errors."""

from __future__ import annotations

import pytest

from benchmark.cli.options import parse_options
from benchmark.errors import MedAugBenchError
from tests.helpers import one_line_error


def test_key_value_options_convert_values_and_nest_dotted_keys():
    parsed = parse_options(["a.b=1", "a.c=0.5", "flag=true", "off=none", "name=ray://head:10001"], "x", "-X a=1")
    assert parsed == {"a": {"b": 1, "c": 0.5}, "flag": True, "off": None, "name": "ray://head:10001"}
    with pytest.raises(MedAugBenchError, match=r"executor option 'workers' is not KEY=VALUE \(example: -X workers=2\)"):
        parse_options(["workers"], "executor", "-X workers=2")


def test_unknown_strategy_parameter_is_one_line_before_any_data_is_read(cli, tmp_path):
    # the data folder does not exist: the strategy's parameters are refused before the dataset is looked at
    result = cli("train", "--strategy", "geometric", "-S", "nosuchparam=3", "--data-dir", str(tmp_path / "none"))
    line = one_line_error(result)
    assert line == "Error: strategy 'geometric' does not take 'nosuchparam'; it accepts: modality, flip_p, degrees"


def test_run_help_lists_the_generic_executor_option_and_no_executor_flags(cli):
    result = cli("run", "--help")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.replace("│", " ").split())  # the help's wrapped lines, borders left out
    assert "--executor-option" in text and "-X" in text and "plugins show executor NAME" in text
    assert not {"--workers", "--address", "--cpus-per-cell"} & set(text.split())


def test_executor_options_reach_the_executor(cli, monkeypatch):
    import benchmark.grid.runner as runner

    made = []

    def stop(grid, results_dir, executor, **kwargs):
        made.append(executor)
        raise MedAugBenchError("stopped before running")

    monkeypatch.setattr(runner, "run_grid", stop)
    one_line_error(cli("run", "quick", "--executor", "local", "-X", "workers=3"))
    assert [type(e).__name__ for e in made] == ["LocalExecutor"] and made[0].workers == 3


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (
            "worker=2",
            "executor 'local' does not take 'worker' (did you mean 'workers' for 'worker'?); "
            "it accepts: workers, workers_per_gpu",
        ),
        ("workers=two", "workers must be an integer of at least 1, got 'two'"),
        ("workers", "executor option 'workers' is not KEY=VALUE (example: -X workers=2)"),
    ],
)
def test_a_wrong_executor_option_is_one_line(cli, tmp_path, option, message):
    results = tmp_path / "results"
    line = one_line_error(cli("run", "quick", "-o", str(results), "--executor", "local", "-X", option))
    assert line == f"Error: {message}"
    assert not results.exists()


def test_plugins_show_lists_the_parameters_a_user_can_set(cli):
    result = cli("plugins", "show", "executor", "ray")
    assert result.exit_code == 0, result.output
    assert "parameters, set with -X KEY=VALUE:" in result.output
    for line in ("address: str | None = None", "cpus_per_cell: int | None = None", "max_retries: int = 1"):
        assert f"  {line}\n" in result.output
    assert "Runs each cell as a Ray task" in result.output  # the factory's docstring explains them

    strategy = cli("plugins", "show", "strategy", "cgan").output
    assert "set with -S KEY=VALUE" in strategy and "  generator_params: dict = {}\n" in strategy
    backbone = cli("plugins", "show", "backbone", "simple_cnn").output
    assert "  in_chans: int  (given by the harness)\n" in backbone and "seed paper" in backbone


def test_plugins_list_shows_descriptions_whole_and_points_to_show(cli):
    output = cli("plugins", "list").output
    assert "needs medaugbench[ray]" in output  # brackets are text, not console markup
    assert "`medaugbench plugins show KIND NAME` lists a plugin's parameters" in " ".join(output.split())


def test_plugins_show_refuses_an_unknown_kind_or_name(cli):
    assert "unknown plugin kind 'executors'; choose one of dataset" in one_line_error(
        cli("plugins", "show", "executors", "ray")
    )
    assert "Did you mean 'local'?" in one_line_error(cli("plugins", "show", "executor", "locl"))
