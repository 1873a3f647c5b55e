"""How figures are written in reports: percentages, points, dollars, seconds, tables and inline images.

One module for the evaluation report (:mod:`cadre.evaluate.report`) and the demo report (:mod:`cadre.demo`),
so a number reads the same wherever it appears. A missing or non-finite value is written ``n/a``.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "finite",
    "html_table",
    "inline_md",
    "markdown_html_table",
    "md_table",
    "p_value",
    "percent",
    "png_base64",
    "png_file_html",
    "points",
    "seconds",
    "seconds_plain",
    "usd",
    "usd_rounded",
]

NA = "n/a"


def finite(x: float | None) -> float | None:
    """``x``, or None when it is missing or not finite."""
    return None if x is None or not math.isfinite(x) else x


def percent(x: float | None, *, unit: str = "") -> str:
    """A share as a percentage with one decimal: ``0.123`` -> ``12.3`` (plus ``unit``)."""
    return NA if finite(x) is None else f"{x * 100:.1f}{unit}"  # type: ignore[operator]


def points(x: float | None, *, unit: str = "") -> str:
    """A difference of shares in signed percentage points: ``0.05`` -> ``+5.0`` (plus ``unit``)."""
    return NA if finite(x) is None else f"{x * 100:+.1f}{unit}"  # type: ignore[operator]


def usd(x: float | None) -> str:
    """Dollars with the precision small amounts need: ``$0``, ``$1.2345``, ``$0.000123``."""
    if x is None or not math.isfinite(x):
        return NA
    if x == 0:
        return "$0"
    if x >= 0.01:
        return f"${x:,.4f}"
    return f"${x:.3g}"


def usd_rounded(x: float | None) -> str:
    """Dollars to four decimals under one dollar, to cents above."""
    if x is None or not math.isfinite(x):
        return NA
    return f"${x:.4f}" if x < 1 else f"${x:.2f}"


def seconds(x: float | None) -> str:
    """A duration in the unit that reads best: µs, ms or s."""
    if x is None or not math.isfinite(x):
        return NA
    if x < 0.001:
        return f"{x * 1e6:.0f} µs"
    return f"{x * 1000:.0f} ms" if x < 1 else f"{x:.2f} s"


def seconds_plain(x: float | None) -> str:
    """A duration in seconds with two decimals."""
    return NA if x is None or not math.isfinite(x) else f"{x:.2f} s"


def p_value(p: float) -> str:
    return f"{p:.2g}" if p >= 1e-4 else "<1e-4"


# ------------------------------------------------------------------------------------------------- tables


def md_table(head: Sequence[str], rows: Sequence[Sequence[str]], *, empty: str = "_none_\n") -> str:
    """A Markdown table (``|`` in cells escaped); ``empty`` when there are no rows."""
    if not rows:
        return empty
    out = "| " + " | ".join(head) + " |\n|" + "---|" * len(head) + "\n"
    return out + "".join("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |\n" for row in rows)


def html_table(rows: Sequence[dict[str, str]], *, base: str | None = None, left: int = 1) -> str:
    """An HTML table of plain-text cells: the first ``left`` columns left-aligned, the ``base`` system's row
    marked."""
    if not rows:
        return "<p class='note'>none</p>"
    cols = list(rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = []
    for r in rows:
        cls = " class='base'" if base is not None and r.get("System") == base else ""
        cells = "".join(
            f"<td{' class=l' if i < left else ''}>{html.escape(r[c])}</td>" for i, c in enumerate(cols)
        )
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<div class='wrap'><table><tr>{head}</tr>{''.join(body)}</table></div>"


def inline_md(text: str) -> str:
    """Escape, then render the inline forms the reports use (**bold**, _italic_, *italic*, `code`)."""
    s = html.escape(text)
    s = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", s)
    s = re.sub(r"`(.+?)`", r"<code>\1</code>", s)
    s = re.sub(r"(?<![\w])_(.+?)_(?![\w])", r"<i>\1</i>", s)
    s = re.sub(r"\*(.+?)\*", r"<i>\1</i>", s)
    return s


def markdown_html_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """An HTML table of cells with inline Markdown; short numeric-looking cells right-aligned."""
    if not rows:
        return "<p class=muted>(none)</p>"
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = []
    for row in rows:
        cells = []
        for c in row:
            cls = ""
            if len(c) <= 40 and (c.startswith(("+", "-", "$", NA)) or c[:1].isdigit()):
                cls = " class=num"
            cells.append(f"<td{cls}>{inline_md(c)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{th}</tr>{''.join(body)}</table>"


# ------------------------------------------------------------------------------------------------- images


def png_base64(fig: Any) -> str:
    """A matplotlib figure as base64 PNG (the figure is closed)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def png_file_html(path: Path | None, alt: str) -> str:
    """A PNG file inlined as an ``<img>`` paragraph; empty when there is no file."""
    if path is None or not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<p><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></p>'
