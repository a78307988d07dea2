"""The seed papers' claims beside what results folders measured for the same strategies: one table (claims.md and
claims.csv) of the papers' gains over no augmentation and rankings next to each run's Δ, 95 % CI, Holm-corrected p
and rank, so a reader sees at a glance whether a claim held under equal budgets and several seeds. Δ, CI and p are
the leaderboard's primary run-level inference (Student t over generator-seed means, `inference.run_test`); the
paired bootstrap over test images is kept as a secondary p."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from scipy import stats

from benchmark.data.files import write_text_atomic
from benchmark.publish.fmt import fmt_delta, fmt_p, markdown_table
from benchmark.publish.leaderboard import Leaderboard, build_leaderboard

SEED_PAPER = "cGAN paper, Table 2 (HAM10000, 7 classes, one run each)"
BALANCING_PAPER = "balancing paper, Table II (ChestXray2017, one run; validation accuracy)"
SEED_BASELINE_ACCURACY, SEED_BASELINE_AUC = 74.3, 0.81  # the seed paper's no-augmentation row
GENERATIVE_POLICY = "balance"  # the seed paper's Algorithm 2: top up every class to the largest


@dataclass(frozen=True)
class Claim:
    """One strategy's result as a paper reports it: accuracy (%) and AUC with and without the strategy."""

    source: str
    strategy: str
    policy: str  # the synthesis policy the claim used; "–" for a classic strategy
    baseline_accuracy: float
    accuracy: float
    baseline_auc: float | None = None
    auc: float | None = None

    @property
    def accuracy_gain(self) -> float:
        """The claimed gain over no augmentation, in percentage points."""
        return round(self.accuracy - self.baseline_accuracy, 2)

    @property
    def auc_gain(self) -> float | None:
        """The claimed AUC gain over no augmentation, where the paper gives AUC."""
        return None if self.auc is None or self.baseline_auc is None else round(self.auc - self.baseline_auc, 3)


def _seed_paper_claims() -> tuple[Claim, ...]:
    """Table 2 of the seed paper against its no-augmentation row."""
    rows = {
        "geometric": (77.1, 0.84),
        "cutmix_mixup": (78.5, 0.86),
        "vae": (79.4, 0.87),
        "dcgan": (80.2, 0.88),
        "ddpm": (81.0, 0.89),
        "cgan": (82.1, 0.91),
    }
    classic = {"geometric", "cutmix_mixup"}
    return tuple(
        Claim(
            SEED_PAPER,
            name,
            "–" if name in classic else GENERATIVE_POLICY,
            SEED_BASELINE_ACCURACY,
            acc,
            SEED_BASELINE_AUC,
            auc,
        )
        for name, (acc, auc) in rows.items()
    )


CLAIMS: tuple[Claim, ...] = (
    *_seed_paper_claims(),
    Claim(BALANCING_PAPER, "dcgan", "fixed", 87.1, 89.3),  # +400 synthetic normal images
)
RANKED = ("none", *(c.strategy for c in CLAIMS if c.source == SEED_PAPER))  # the seed paper's order, worst first

COLUMNS = (
    "source",
    "results",
    "dataset",
    "train_fraction",
    "strategy",
    "policy",
    "seeds",
    "generator_seeds",
    "claimed_accuracy_gain",
    "accuracy_gain",
    "accuracy_ci_low",
    "accuracy_ci_high",
    "accuracy_p_holm_t",
    "accuracy_p_holm_bootstrap",
    "claimed_auc_gain",
    "auc_gain",
    "auc_ci_low",
    "auc_ci_high",
    "auc_p_holm_t",
    "auc_p_holm_bootstrap",
    "claimed_rank",
    "rank",
)


def claims_table(boards: list[Leaderboard]) -> pd.DataFrame:
    """One row per claim × (results folder, dataset, fraction) that ran the claim's strategy and policy: the
    claimed gains beside the measured Δ (accuracy in pp), its run-level Student-t CI and Holm-corrected p (the
    bootstrap's Holm p beside it, secondary), and both ranks among the seed paper's seven strategies (1 = best)."""
    rows = []
    for board in boards:
        for _, stat in board.stats.iterrows():
            claim = _claim_for(stat["strategy"], stat["policy"])
            if claim is None or pd.isna(stat.get("accuracy_diff")):
                continue
            rank = _rank(board, stat)
            rows.append(
                {
                    "source": claim.source,
                    "results": str(board.results_dir),
                    "dataset": stat["dataset"],
                    "train_fraction": stat["train_fraction"],
                    "strategy": stat["strategy"],
                    "policy": _policy(stat["policy"]),
                    "seeds": int(stat["n_paired"]),
                    "generator_seeds": int(stat["n_generator_seeds"]),
                    "claimed_accuracy_gain": claim.accuracy_gain,
                    "accuracy_gain": 100 * stat["accuracy_diff"],
                    "accuracy_ci_low": 100 * stat["accuracy_t_ci_low"],
                    "accuracy_ci_high": 100 * stat["accuracy_t_ci_high"],
                    "accuracy_p_holm_t": stat["accuracy_t_p_holm"],
                    "accuracy_p_holm_bootstrap": stat["accuracy_bootstrap_p_holm"],
                    "claimed_auc_gain": claim.auc_gain,
                    "auc_gain": stat["auc_diff"],
                    "auc_ci_low": stat["auc_t_ci_low"],
                    "auc_ci_high": stat["auc_t_ci_high"],
                    "auc_p_holm_t": stat["auc_t_p_holm"],
                    "auc_p_holm_bootstrap": stat["auc_bootstrap_p_holm"],
                    "claimed_rank": len(RANKED) - RANKED.index(claim.strategy) if claim.source == SEED_PAPER else None,
                    "rank": rank,
                }
            )
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    order = table["source"].map({SEED_PAPER: 0, BALANCING_PAPER: 1}) * len(RANKED) + table["strategy"].map(
        lambda name: RANKED.index(name) if name in RANKED else len(RANKED)
    )  # the seed paper's rows in its order, then the balancing paper's
    keys = ["results", "dataset", "train_fraction", "_order"]
    return table.assign(_order=order).sort_values(keys, kind="stable", ignore_index=True).drop(columns="_order")


def ranking_agreement(boards: list[Leaderboard]) -> list[dict]:
    """Per (results folder, dataset, fraction): Kendall's τ between the seed paper's accuracy order of its seven
    strategies and the measured mean test accuracies (1 = the same order, 0 = unrelated), with its p."""
    claimed = {"none": SEED_BASELINE_ACCURACY} | {c.strategy: c.accuracy for c in CLAIMS if c.source == SEED_PAPER}
    out = []
    for board in boards:
        for dataset, wide in board.wide.items():
            for fraction, rows in wide.groupby("train_fraction", sort=True):
                measured = _paper_strategies(rows).set_index("strategy")["accuracy_mean"]
                if len(measured) < 3:
                    continue
                tau = stats.kendalltau([claimed[s] for s in measured.index], measured.to_numpy())
                out.append(
                    {
                        "results": str(board.results_dir),
                        "dataset": dataset,
                        "train_fraction": fraction,
                        "strategies": len(measured),
                        "tau": float(tau.statistic),
                        "p": float(tau.pvalue),
                        "order": " < ".join(measured.sort_values(kind="stable").index),
                        "none_accuracy": 100 * measured.get("none", math.nan),
                    }
                )
    return out


def write_claims(results_dirs: list[Path], out: Path, baseline: str = "none") -> list[Path]:
    """Build every folder's leaderboard and write claims.csv and claims.md into `out`."""
    boards = [build_leaderboard(Path(d), baseline) for d in results_dirs]
    table = claims_table(boards)
    return [
        write_text_atomic(out / "claims.csv", table.to_csv(index=False)),
        write_text_atomic(out / "claims.md", claims_markdown(table, ranking_agreement(boards))),
    ]


def claims_markdown(table: pd.DataFrame, agreement: list[dict]) -> str:
    """claims.md: the one table, then the ranking agreement per setting."""
    lines = [
        "# The papers' claims beside this run",
        "",
        "_Claimed: the paper's gain over its no-augmentation row (one run, no error bar). Measured: strategy − `none` "
        "on the test set over the runs both made (paired on generator and classifier seed), accuracy in percentage "
        "points, with the leaderboard's primary run-level inference: [95% CI] a Student-t interval over the "
        "generator-seed means of the paired differences (uncorrected), p its t-test; the paired bootstrap over test "
        "images is the secondary p (it speaks about these test images, not new training runs). Each p is "
        "Holm-corrected across its dataset's leaderboard table (strategies × metrics). Seeds: paired runs "
        "(generator seeds). Rank: among the seed paper's seven strategies, 1 = best mean test accuracy (paper: "
        "1 = cGAN … 7 = none)._",
        "",
    ]
    headers = [
        "Claim",
        "Results",
        "Dataset",
        "Strategy",
        "Seeds",
        "Claimed Δ acc. (pp)",
        "Measured Δ acc. (pp) [95% CI]",
        "Holm p (t / boot)",
        "Claimed Δ AUC",
        "Measured Δ AUC [95% CI]",
        "Holm p (t / boot)",
        "Rank (paper → here)",
    ]
    rows = [
        [
            row["source"].split(",")[0],
            f"`{Path(row['results']).name}`",
            _dataset_label(row["dataset"], row["train_fraction"]),
            row["strategy"] + ("" if row["policy"] in ("–", GENERATIVE_POLICY) else f" ({row['policy']})"),
            f"{row['seeds']} ({row['generator_seeds']})",
            fmt_delta(row["claimed_accuracy_gain"], 1, 1),
            _delta_ci(row, "accuracy", 1),
            f"{fmt_p(row['accuracy_p_holm_t'])} / {fmt_p(row['accuracy_p_holm_bootstrap'])}",
            fmt_delta(row["claimed_auc_gain"], 1, 2),
            _delta_ci(row, "auc", 3),
            f"{fmt_p(row['auc_p_holm_t'])} / {fmt_p(row['auc_p_holm_bootstrap'])}",
            _ranks(row["claimed_rank"], row["rank"]),
        ]
        for _, row in table.iterrows()
    ]
    lines += markdown_table(headers, rows)
    lines += [f"Sources: {SEED_PAPER}; {BALANCING_PAPER}.", "", "## Does the seed paper's ranking hold?", ""]
    lines += [
        f"_Kendall's τ between the seed paper's accuracy order ({' < '.join(RANKED)}) and the measured mean test "
        "accuracies: 1 = the same order, 0 = unrelated, −1 = reversed; p tests τ = 0 (uncorrected, one per setting)._",
        "",
    ]
    headers = [
        "Results",
        "Dataset",
        "Strategies",
        "τ",
        "p",
        "Measured order (worst → best)",
        f"`none` acc. (%) (paper {SEED_BASELINE_ACCURACY:g})",
    ]
    rows = [
        [
            f"`{Path(item['results']).name}`",
            _dataset_label(item["dataset"], item["train_fraction"]),
            str(item["strategies"]),
            f"{item['tau']:+.2f}",
            fmt_p(item["p"]),
            item["order"],
            f"{item['none_accuracy']:.1f}",
        ]
        for item in agreement
    ]
    return "\n".join(lines + markdown_table(headers, rows))


def _delta_ci(row: pd.Series, metric: str, digits: int) -> str:
    """A measured Δ with its CI, '–' for any part the leaderboard could not compute."""
    low, high = (fmt_delta(row[f"{metric}_ci_{end}"], 1, digits) for end in ("low", "high"))
    return f"{fmt_delta(row[f'{metric}_gain'], 1, digits)} [{low}, {high}]"


def _claim_for(strategy: str, policy: object) -> Claim | None:
    """The claim about this strategy under this policy (classic strategies have policy '–')."""
    return next((c for c in CLAIMS if c.strategy == strategy and c.policy == _policy(policy)), None)


def _policy(policy: object) -> str:
    """A row's synthesis policy, '–' for a classic strategy (the leaderboard leaves it empty)."""
    return "–" if policy is None or pd.isna(policy) else str(policy)


def _paper_strategies(wide: pd.DataFrame) -> pd.DataFrame:
    """The rows of the seed paper's seven strategies, generative ones with its balance policy."""
    keep = wide["strategy"].isin(RANKED) & wide["policy"].map(_policy).isin(["–", GENERATIVE_POLICY])
    return wide[keep]


def _rank(board: Leaderboard, stat: pd.Series) -> int | None:
    """The row's rank by mean test accuracy among the seed paper's seven strategies in its dataset and fraction; None
    where not all seven ran there (a learning curve's extra fractions), since a rank among fewer is not the paper's."""
    wide = board.wide[stat["dataset"]]
    rows = _paper_strategies(wide[wide["train_fraction"] == stat["train_fraction"]])
    if stat["model"] not in set(rows["model"]) or set(rows["strategy"]) != set(RANKED):
        return None
    order = rows.sort_values("accuracy_mean", ascending=False, kind="stable")["model"].tolist()
    return order.index(stat["model"]) + 1


def _ranks(claimed: object, measured: object) -> str:
    if pd.isna(claimed) or pd.isna(measured):
        return "–"
    return f"{int(claimed)} → {int(measured)}"


def _dataset_label(dataset: str, fraction: float) -> str:
    return dataset if float(fraction) == 1.0 else f"{dataset} ({float(fraction):g})"
