"""Dataset cards: provenance and caveats kept as Markdown with a TOML header in the repository's `datasets/`."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import benchmark


@dataclass(frozen=True)
class DatasetCard:
    name: str
    source: str = ""
    paper: str = ""
    caveats: tuple[str, ...] = ()
    positive_class: str = ""  # binary tasks: the label whose recall is the sensitivity (e.g. "malignant")
    body: str = ""
    path: Path | None = field(default=None, compare=False)


def cards_dir() -> Path:
    """Cards ship inside the wheel as `benchmark/dataset_cards`; an editable install reads `datasets/` directly."""
    packaged = Path(benchmark.__file__).parent / "dataset_cards"
    return packaged if packaged.is_dir() else Path(benchmark.__file__).parent.parent / "datasets"


def parse_card(name: str, text: str, path: Path | None = None) -> DatasetCard:
    """Split `+++` TOML front matter from the Markdown body."""
    header, body = {}, text
    if text.startswith("+++"):
        _, raw, body = text.split("+++", 2)
        header = tomllib.loads(raw)
    return DatasetCard(
        name=name,
        source=header.get("source", ""),
        paper=header.get("paper", ""),
        caveats=tuple(header.get("caveats", ())),
        positive_class=header.get("positive_class", ""),
        body=body.strip(),
        path=path,
    )


def load_card(name: str) -> DatasetCard | None:
    """The card of dataset `name`, or None when it has none."""
    path = cards_dir() / f"{name}.md"
    return parse_card(name, path.read_text(encoding="utf-8"), path) if path.is_file() else None


def positive_class(name: str) -> str:
    """The positive class a dataset's card names (binary tasks), or "" when it names none."""
    card = load_card(name)
    return card.positive_class if card else ""
