"""The HTML report's building blocks: escaping and anchors, the sortable table (each cell its text and the value it
sorts by, a number wrapping between its parts), embedded PNG figures, and the inline CSS, sorting script and CSP."""

from __future__ import annotations

import base64
import math
import re
from html import escape

from benchmark.publish.fmt import fmt_text

# A table cell: the text shown and the value the sorter orders by (a number, a string, or None: always last).
Cell = tuple[str, object]
# Where a number cell may wrap: before a bracketed part ('[CI]', '(floor …)') and after a ';'.
BREAKS = re.compile(r" (?=[\[(])|(?<=;) ")
UP = '<a class="up" href="#contents">↑ contents</a>'  # beside each dataset heading: back to the contents

CSS = """
:root { --fg: #1b1f24; --muted: #57606a; --line: #d0d7de; --head: #f3f5f7; --bad: #b42318; --badbg: #fff1f0; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); margin: 0 auto;
       padding: 1.5rem 2rem 4rem; max-width: 1400px; }
h1 { margin: 0 0 .3rem; font-size: 1.7rem; }
h2 { margin-top: 2.5rem; padding-bottom: .3rem; border-bottom: 2px solid var(--line); }
h3 { margin-top: 1.8rem; }
p.note, .muted { color: var(--muted); }
nav.toc { margin: 1rem 0; padding: .4rem 1rem .6rem; border: 1px solid var(--line); background: #fafbfc; }
nav.toc h2 { margin: .3rem 0 .4rem; border: 0; font-size: 1.1rem; }
nav.toc > ol { columns: 17rem; column-gap: 2rem; margin: 0; padding-left: 1.2rem; }
nav.toc li { break-inside: avoid; } nav.toc ol ol { padding-left: 1.1rem; font-size: .92em; }
a.up { float: right; font-size: .8rem; font-weight: normal; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; margin: 1rem 0; }
dl.facts dt { font-weight: 600; } dl.facts dd { margin: 0; }
.description { white-space: pre-wrap; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: .6rem 0 1rem; font: 13px/1.35 system-ui, -apple-system, "Segoe UI", Roboto,
        sans-serif; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid var(--line); padding: .2rem .45rem; text-align: right; }
th { background: var(--head); vertical-align: bottom; }
td { white-space: nowrap; }
td.parts { white-space: normal; } td.parts span { white-space: nowrap; }
td.text, th.text { text-align: left; }
td.wrap, th.wrap { white-space: normal; min-width: 8rem; text-align: left; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th::after { content: " \\2195"; color: #8c959f; font-size: .8em; }
table.sortable th[aria-sort="ascending"]::after { content: " \\25B2"; color: var(--fg); }
table.sortable th[aria-sort="descending"]::after { content: " \\25BC"; color: var(--fg); }
tbody tr:nth-child(even) { background: #fafbfc; }
tr.baseline td { font-weight: 600; }
.plots { display: flex; flex-wrap: wrap; gap: 1rem; }
figure { margin: 0; border: 1px solid var(--line); padding: .5rem; background: #fff; }
figure img { display: block; max-width: 100%; height: auto; image-rendering: pixelated; }
figure.plot img { max-width: 640px; image-rendering: auto; }
figure.plot.wide img { max-width: 100%; }
figcaption { color: var(--muted); font-size: .9em; margin-top: .3rem; max-width: 640px; }
section.failed { border: 2px solid var(--bad); background: var(--badbg); padding: .2rem 1rem 1rem; margin-top: 2rem; }
section.failed h2 { color: var(--bad); border-color: var(--bad); }
div.flagged { border: 2px solid var(--bad); background: var(--badbg); padding: .2rem 1rem; margin: .5rem 0; }
.badge-bad { color: var(--bad); font-weight: 600; }
details { margin: .2rem 0; } summary { cursor: pointer; color: var(--muted); }
pre { background: #f6f8fa; border: 1px solid var(--line); padding: .7rem; overflow: auto; max-height: 32rem;
      font-size: 12.5px; white-space: pre-wrap; overflow-wrap: anywhere; }
td pre { max-width: 60rem; max-height: 20rem; text-align: left; }
"""

# Sorts table.sortable by the clicked column: ascending first, descending on the next click. Cells order by their
# data-value (numbers numerically when the header says data-type="num"); empty values stay last either way.
SCRIPT = """
(function () {
  "use strict";
  function key(cell, numeric) {
    var raw = cell ? cell.getAttribute("data-value") : null;
    if (raw === null) { raw = cell ? cell.textContent : ""; }
    if (numeric) { var x = parseFloat(raw); return isFinite(x) ? x : null; }
    raw = raw.trim().toLowerCase();
    return raw === "" ? null : raw;
  }
  function sortBy(th) {
    var table = th.closest("table"), body = table.tBodies[0];
    var index = Array.prototype.indexOf.call(th.parentNode.children, th);
    var numeric = th.getAttribute("data-type") === "num";
    var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
    var rows = Array.prototype.map.call(body.rows, function (row, i) {
      return { row: row, i: i, k: key(row.cells[index], numeric) };
    });
    rows.sort(function (a, b) {
      if (a.k === null || b.k === null) { return (a.k === null) - (b.k === null) || a.i - b.i; }
      var c = numeric ? a.k - b.k : a.k.localeCompare(b.k);
      return c * dir || a.i - b.i;
    });
    rows.forEach(function (r) { body.appendChild(r.row); });
    Array.prototype.forEach.call(th.parentNode.children, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
  }
  document.querySelectorAll("table.sortable thead th").forEach(function (th) {
    th.tabIndex = 0;
    th.title = "Sort by this column (click again to reverse)";
    th.addEventListener("click", function () { sortBy(th); });
    th.addEventListener("keydown", function (event) {
      if (event.key === "Enter" || event.key === " ") { event.preventDefault(); sortBy(th); }
    });
  });
})();
"""

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"


def plot_figure(data: bytes, caption: str, wide: bool = False) -> str:
    """One embedded PNG plot with its caption; a `wide` one (a panel per backbone and fraction) may fill the page."""
    return (
        f'<figure class="plot{" wide" if wide else ""}"><img src="{data_uri(data)}" alt="{esc(caption)}">'
        f"<figcaption>{esc(caption)}</figcaption></figure>"
    )


def sortable_table(
    columns: list[tuple[str, str]], rows: list[list[Cell]], table_id: str, row_classes: list[str] | None = None
) -> str:
    """A sortable table: columns are (header, "num" | "text" | "wrap"), each cell (shown text, sort value)."""
    head = "".join(
        f'<th scope="col" data-type="{"num" if kind == "num" else "text"}"{_cell_class(kind)}>{esc(header)}</th>'
        for header, kind in columns
    )
    body = []
    for index, row in enumerate(rows):
        css = (row_classes or [""] * len(rows))[index]
        tds = "".join(_td(kind, text, value) for (_, kind), (text, value) in zip(columns, row))
        body.append((f'<tr class="{css}">' if css else "<tr>") + f"{tds}</tr>")
    return (
        f'<div class="scroll"><table class="sortable" id="{esc(table_id)}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _cell_class(kind: str) -> str:
    return {"num": "", "text": ' class="text"', "wrap": ' class="wrap"'}[kind]


def _td(kind: str, text: str, value: object) -> str:
    """One cell; a number followed by bracketed parts ('Δ [CI] ↑', 'FID (floor …; shift …)') may wrap between
    its parts, never inside one, so a wide cell wraps rather than widening the page."""
    parts = BREAKS.split(text) if kind == "num" else [text]
    shown = esc(text) if len(parts) == 1 else " ".join(f"<span>{esc(part)}</span>" for part in parts)
    css = ' class="parts"' if len(parts) > 1 else _cell_class(kind)
    return f'<td{css} data-value="{esc(_value(value))}">{shown}</td>'


def num(value: object) -> float | None:
    """A finite float to sort by, or None."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def sort_text(value: object) -> str | None:
    text = fmt_text(value)
    return None if text in ("–", "") else text


def _value(value: object) -> str:
    """The data-value attribute: repr of a float (full precision), the text, or empty for missing."""
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ""
    return str(value)


def data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def anchor(name: str) -> str:
    """An id-safe fragment of a name (escaping still applies where it is written)."""
    return "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in str(name))


def esc(value: object) -> str:
    """Text made safe inside HTML elements and attribute values."""
    return escape(str(value), quote=True)
