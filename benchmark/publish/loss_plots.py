"""PNG plots (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from benchmark.data.files import atomic_output  # noqa: E402


def plot_generator_losses(histories: dict[str, dict], out: Path, title: str = "") -> Path:
    """One panel per trained model: every loss it logged against the generator step."""
    fig, axes = plt.subplots(1, len(histories), figsize=(4.5 * len(histories), 3.2), squeeze=False)
    for axis, (name, history) in zip(axes[0], histories.items()):
        for loss, values in history["losses"].items():
            axis.plot(history["log_step"], values, label=loss)
        axis.set_title(name)
        axis.set_xlabel("generator step")
        axis.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    try:
        with atomic_output(out, "wb") as handle:  # a killed or failed write leaves no half a PNG
            fig.savefig(handle, format="png", dpi=100)
    finally:
        plt.close(fig)
    return out
