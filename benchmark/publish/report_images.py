"""The report's generated images: per generative strategy of a dataset, the samples per class and the closest
synthetic/training pairs that the first cell of each generator saved, embedded as data URIs."""

from __future__ import annotations

from pathlib import Path

from benchmark.grid.store import CellRecord, pairs_path, samples_path
from benchmark.publish.fmt import fmt_text
from benchmark.publish.leaderboard import Leaderboard
from benchmark.publish.report_html import data_uri, esc, num

NO_IMAGES = "no sample images saved for this run"


def images_block(board: Leaderboard, records: list[CellRecord], dataset: str) -> str:
    """Per generative strategy and generator (generator seed, backbone, fraction, policy), the synthetic samples per
    class and the closest synthetic/training pairs of its first cell that saved them (its classifier seeds reuse
    the same synthetic set), or a note that none were saved."""
    strategies = _generative_cells(board.results_dir, records, dataset)
    if not strategies:
        return '<p class="note">No generative strategy ran on this dataset.</p>'
    parts = []
    for strategy in sorted(strategies, key=str.lower):
        parts.append(f"<h4>{esc(strategy)}</h4>")
        saved = [r for r in strategies[strategy] if any(p.is_file() for p, _ in _image_paths(board.results_dir, r))]
        firsts = {_generator_of(r): r for r in reversed(saved)}  # the first saved cell of each generator
        shown = sorted(firsts.values(), key=_cell_order)
        parts += [_cell_images(board.results_dir, r) for r in shown] or [f'<p class="note">{esc(NO_IMAGES)}</p>']
    return "\n".join(parts)


def _generator_of(record: CellRecord) -> tuple:
    """What fixes a cell's synthetic set: its generator seed (the seed, in records before seeds were split),
    backbone, train fraction and policy."""
    cell = record.cell
    return (_order(cell.get("generator_seed", cell.get("seed"))), *_cell_order(record)[2:])


def _generative_cells(results_dir: Path, records: list[CellRecord], dataset: str) -> dict[str, list[CellRecord]]:
    """The dataset's "ok" cells of strategies that synthesised images, by strategy, in seed, backbone, fraction and
    policy order."""
    ok = [r for r in records if r.ok and r.cell.get("dataset") == dataset]
    strategies: dict[str, list[CellRecord]] = {}
    for record in sorted(ok, key=_cell_order):
        if _is_generative(results_dir, record):
            strategies.setdefault(str(record.cell.get("strategy")), []).append(record)
    return strategies


def _cell_order(record: CellRecord) -> tuple:
    """Generator seed, seed, backbone, train fraction, policy: the order in which a strategy's cells are searched for
    images."""
    cell = record.cell
    return (
        _order(cell.get("generator_seed", cell.get("seed"))),
        _order(cell.get("seed")),
        str(cell.get("backbone")),
        _order(cell.get("train_fraction")),
        str(cell.get("policy")),
    )


def _image_paths(results_dir: Path, record: CellRecord) -> list[tuple[Path, str]]:
    """A cell's sample grid and closest-pairs PNGs with their captions."""
    return [
        (samples_path(results_dir, record.cell_id), "Synthetic images per class (one row per class)"),
        (
            pairs_path(results_dir, record.cell_id),
            "Memorisation audit: closest synthetic / training pairs (pixel space)",
        ),
    ]


def _cell_images(results_dir: Path, record: CellRecord) -> str:
    """One cell's saved images as embedded figures captioned with the cell's coordinates; a note for a missing one."""
    cell = record.cell
    seeds = f"seed {cell.get('seed')}"
    if cell.get("generator_seed") is not None:
        seeds = f"generator seed {cell.get('generator_seed')}, classifier seed {cell.get('seed')}"
    where = (
        f"{seeds}, backbone {cell.get('backbone')}, "
        f"train fraction {fmt_text(cell.get('train_fraction'))}"
        + (f", policy {cell.get('policy')}" if cell.get("policy") else "")
        + f" (cell {record.cell_id})"
    )
    figures = []
    for path, caption in _image_paths(results_dir, record):
        if path.is_file():
            figures.append(
                f'<figure class="samples"><img src="{data_uri(path.read_bytes())}" alt="{esc(caption)}">'
                f"<figcaption>{esc(caption)}; {esc(where)}</figcaption></figure>"
            )
        else:
            figures.append(f'<p class="note">{esc(caption)}: not saved for this cell.</p>')
    return '<div class="plots">' + "".join(figures) + "</div>"


def _order(value: object) -> tuple[int, object]:
    """Sort key putting numbers in numeric order and anything else after them, as text."""
    number = num(value)
    return (0, number) if number is not None else (1, str(value))


def _is_generative(results_dir: Path, record: CellRecord) -> bool:
    """Whether a cell's strategy synthesised images: it has a synthesis policy, a generator or synthesis report, or
    saved images."""
    facts = record.result.strategy.facts if record.result is not None else {}
    return (
        record.cell.get("policy") is not None
        or bool(facts.get("generator"))
        or bool(facts.get("synthesis"))
        or samples_path(results_dir, record.cell_id).is_file()
        or pairs_path(results_dir, record.cell_id).is_file()
    )
