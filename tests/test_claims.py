"""The claims table puts each paper's claim beside the measured row it is about (fabricated leaderboards with a known
answer): the right claim per strategy and policy, Δ in points, ranks among the seed paper's seven, Kendall's τ."""

import math
from pathlib import Path

import pandas as pd
import pytest

from benchmark.publish.claims import BALANCING_PAPER, SEED_PAPER, claims_markdown, claims_table, ranking_agreement
from benchmark.publish.leaderboard import Leaderboard
from tests.helpers import one_line_error

PAPER_ORDER = ["none", "geometric", "cutmix_mixup", "vae", "dcgan", "ddpm", "cgan"]  # worst first
CLASSIC = {"none", "geometric", "cutmix_mixup", "randaugment"}


def fabricated_board(accuracy: dict[str, float], folder: str = "results/fake") -> Leaderboard:
    """A leaderboard of one dataset with these mean accuracies (one row per strategy, generative ones with the
    balance policy), a `dcgan` row with the fixed policy, and stats rows against `none`."""
    rows = [
        {
            "model": name,
            "strategy": name,
            "train_fraction": 1.0,
            "policy": math.nan if name in CLASSIC else "balance",
            "accuracy_mean": value,
        }
        for name, value in accuracy.items()
    ]
    rows.append(
        {
            "model": "dcgan@fixed",
            "strategy": "dcgan",
            "train_fraction": 1.0,
            "policy": "fixed",
            "accuracy_mean": accuracy["none"] + 0.01,
        }
    )
    wide = pd.DataFrame(rows)
    base = accuracy["none"]
    stats = pd.DataFrame(
        [
            {
                "dataset": "breastmnist",
                "model": row["model"],
                "strategy": row["strategy"],
                "train_fraction": 1.0,
                "policy": row["policy"],
                "n_paired": 3,
                "n_generator_seeds": 3,
                "accuracy_diff": row["accuracy_mean"] - base,
                "accuracy_t_ci_low": row["accuracy_mean"] - base - 0.02,
                "accuracy_t_ci_high": row["accuracy_mean"] - base + 0.02,
                "accuracy_ci_low": -0.5,  # the bootstrap's: never the claims' interval
                "accuracy_ci_high": 0.5,
                "accuracy_bootstrap_p_holm": 0.04,
                "accuracy_t_p_holm": 0.5,
                "auc_diff": 0.01,
                "auc_t_ci_low": -0.01,
                "auc_t_ci_high": 0.03,
                "auc_ci_low": -0.5,
                "auc_ci_high": 0.5,
                "auc_bootstrap_p_holm": 1.0,
                "auc_t_p_holm": None,
            }
            for row in rows
            if row["strategy"] != "none"
        ]
    )
    empty = pd.DataFrame()
    return Leaderboard(Path(folder), "none", empty, {"breastmnist": wide}, empty, stats, empty, empty)


def paper_ordered() -> dict[str, float]:
    accuracy = {name: 0.70 + 0.02 * i for i, name in enumerate(PAPER_ORDER)}
    return accuracy | {"randaugment": 0.99}  # no claim about it: not in the table, not in the ranking


def test_each_row_gets_its_papers_claim_and_the_measured_gain_in_points():
    table = claims_table([fabricated_board(paper_ordered())]).set_index(["strategy", "policy"], drop=False)
    assert "randaugment" not in set(table["strategy"])
    cgan = table.loc[("cgan", "balance")]
    assert cgan["source"] == SEED_PAPER
    assert cgan["claimed_accuracy_gain"] == pytest.approx(7.8)
    assert cgan["claimed_auc_gain"] == pytest.approx(0.10)
    assert cgan["accuracy_gain"] == pytest.approx(12.0)  # (0.82 - 0.70) × 100
    assert (cgan["accuracy_ci_low"], cgan["accuracy_ci_high"]) == pytest.approx((10.0, 14.0))
    fixed = table.loc[("dcgan", "fixed")]
    assert fixed["source"] == BALANCING_PAPER
    assert fixed["claimed_accuracy_gain"] == pytest.approx(2.2)  # 87.1 → 89.3
    assert pd.isna(fixed["claimed_auc_gain"]) and pd.isna(fixed["rank"])  # not one of the seed paper's seven
    assert list(table["strategy"])[:6] == PAPER_ORDER[1:], "rows follow the seed paper's order"


def test_ranks_and_kendall_tau_follow_the_measured_order():
    table = claims_table([fabricated_board(paper_ordered())])
    seven = table[table["source"] == SEED_PAPER]
    assert (seven["rank"] == seven["claimed_rank"]).all(), "the paper's order measured: every rank as claimed"
    [same] = ranking_agreement([fabricated_board(paper_ordered())])
    assert same["tau"] == pytest.approx(1.0) and same["strategies"] == 7
    assert same["order"] == " < ".join(PAPER_ORDER)

    reversed_accuracy = {name: 0.90 - 0.02 * i for i, name in enumerate(PAPER_ORDER)}
    [opposite] = ranking_agreement([fabricated_board(reversed_accuracy)])
    assert opposite["tau"] == pytest.approx(-1.0)
    cgan = claims_table([fabricated_board(reversed_accuracy)]).query("strategy == 'cgan'").iloc[0]
    assert (cgan["claimed_rank"], cgan["rank"]) == (1, 7)


def test_a_fraction_where_not_all_seven_ran_gives_no_rank():
    board = fabricated_board(paper_ordered())
    curve = {"model": "geometric@0.05", "strategy": "geometric", "train_fraction": 0.05, "policy": math.nan}
    board.wide["breastmnist"] = pd.concat(
        [board.wide["breastmnist"], pd.DataFrame([curve | {"accuracy_mean": 0.75}])], ignore_index=True
    )
    geometric = board.stats[board.stats["strategy"] == "geometric"].iloc[0]
    board.stats.loc[len(board.stats)] = geometric.to_dict() | {"model": "geometric@0.05", "train_fraction": 0.05}
    table = claims_table([board])
    at = table.set_index(["strategy", "train_fraction"])
    assert pd.isna(at.loc[("geometric", 0.05), "rank"]), "a rank among 2 strategies is not the paper's rank among 7"
    assert at.loc[("geometric", 1.0), "rank"] == at.loc[("geometric", 1.0), "claimed_rank"]


def test_markdown_shows_claim_measurement_and_corrected_p():
    boards = [fabricated_board(paper_ordered())]
    text = claims_markdown(claims_table(boards), ranking_agreement(boards))
    cgan = next(line for line in text.splitlines() if "| cgan |" in line)
    assert "+7.8" in cgan and "+12.0 [+10.0, +14.0]" in cgan and "0.5 / 0.04" in cgan and "1 → 1" in cgan
    assert "Holm p (t / boot)" in text and "Student-t interval over the generator-seed means" in text
    fixed = next(line for line in text.splitlines() if "dcgan (fixed)" in line)
    assert fixed.startswith("| balancing paper |") and "+2.2" in fixed
    assert "| `fake` | breastmnist | 7 | +1.00 |" in text
    assert "| geometric | 3 (3) |" in text and "nan" not in text, "a classic row's empty policy is not printed"


def test_cli_names_a_missing_folder_and_writes_nothing(cli, tmp_path):
    out = tmp_path / "claims"
    line = one_line_error(cli("claims", str(tmp_path / "nope"), "--out", str(out)))
    assert "is not a folder" in line and "medaugbench run" in line
    assert not out.exists()


def test_a_row_without_a_run_level_interval_shows_dashes_not_nan():
    board = fabricated_board(paper_ordered())
    board.stats[["accuracy_t_ci_low", "accuracy_t_ci_high", "auc_diff"]] = math.nan
    text = claims_markdown(claims_table([board]), ranking_agreement([board]))
    cgan = next(line for line in text.splitlines() if "| cgan |" in line)
    assert "+12.0 [–, –]" in cgan and "| – [" in cgan and "nan" not in text
