"""The `medaugbench` command line (typer), one module per command group, wired here. User errors print one line and
exit 1, never a traceback."""

from __future__ import annotations

import typer
from typer.core import TyperGroup

from benchmark.cli import datasets, plugins, publish, quality, run, synth, train
from benchmark.errors import MedAugBenchError


class _Group(TyperGroup):
    """Turns `MedAugBenchError` into one 'Error: …' line on stderr and exit code 1."""

    def invoke(self, ctx):  # type: ignore[no-untyped-def]
        try:
            return super().invoke(ctx)
        except MedAugBenchError as error:
            typer.echo(f"Error: {error}", err=True)
            raise typer.Exit(1) from None


app = typer.Typer(
    cls=_Group,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Does synthetic data help a medical image classifier more than classic augmentation, under the same compute?",
)
app.command("train")(train.train_command)
app.command("synth")(synth.synth_command)
app.command("quality")(quality.quality_command)
app.command("run")(run.run_command)
app.command("leaderboard")(publish.leaderboard_command)
app.command("report")(publish.report_command)
app.command("pilot")(publish.pilot_command)
app.command("claims")(publish.claims_command)
app.command("compute-curve")(publish.compute_curve_command)
app.add_typer(plugins.app, name="plugins")
app.add_typer(datasets.app, name="datasets")


def main() -> None:
    """Console-script entry point."""
    app()
