"""The demo report rendered: Markdown next to its PNG charts, and one self-contained HTML page."""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

from cadre.demo.composed import ComposedSection
from cadre.evaluate import DeploymentSection, inline_md, markdown_html_table, md_table, png_file_html

__all__ = ["DemoReport", "render_html", "render_markdown"]


def _md(head: list[str], rows: list[list[str]]) -> str:
    return md_table(head, rows, empty="_(none)_\n")


@dataclass
class DemoReport:
    """The demo report's content, already worded; rendered as Markdown or HTML."""

    title: str
    intro: list[str]
    verdicts: list[str]
    table: list[list[str]]
    table_head: list[str]
    ecosystem: list[str]
    robustness_head: list[str]
    robustness: list[list[str]]
    routing: list[str]
    roofline: list[str]
    roofline_rows: list[list[str]]
    audit_lines: list[str]
    audit_rows: list[list[str]]
    steps: list[list[str]]
    images: dict[str, Path]
    serve: list[str]
    deployment: DeploymentSection | None = None  # Table 1 priced at deployment scale (projected)
    composed: ComposedSection | None = None  # the pipeline of the specialists vs one generalist prompt


def render_markdown(rep: DemoReport) -> str:
    parts = [f"# {rep.title}\n", *[line + "\n" for line in rep.intro], "\n## Verdict\n"]
    parts += [f"- {v}\n" for v in rep.verdicts]
    parts += ["\n## Table 1 on this machine\n\n", _md(rep.table_head, rep.table)]
    if "scores" in rep.images:
        parts.append(f"\n![scores]({rep.images['scores'].name})\n")
    if rep.deployment is not None:
        parts += ["\n", rep.deployment.markdown()]
    parts += ["\n## The routed ecosystem\n\n", *[f"- {x}\n" for x in rep.ecosystem]]
    parts += ["\n", rep.composed.markdown()] if rep.composed is not None else []
    parts += [
        "\n## Robustness (answers that should not change)\n\n",
        _md(rep.robustness_head, rep.robustness),
    ]
    parts += ["\n## Routing\n\n", *[f"- {x}\n" for x in rep.routing]]
    if "confusion" in rep.images:
        parts.append(f"\n![routing confusion matrix]({rep.images['confusion'].name})\n")
    parts += ["\n## Where the models sit on the roofline\n\n", *[f"{x}\n" for x in rep.roofline], "\n"]
    parts.append(
        _md(["model", "role", "precision", "decode s/token (model)", "FLOP/byte"], rep.roofline_rows)
    )
    if "roofline" in rep.images:
        parts.append(f"\n![roofline]({rep.images['roofline'].name})\n")
    parts += ["\n## Audit of the paper's numbers\n\n", *[f"{x}\n" for x in rep.audit_lines], "\n"]
    parts.append(_md(["claim", "what", "paper", "recomputed", "note"], rep.audit_rows))
    serve = rep.serve or ["_No ecosystem was written (see the steps below)._"]
    parts += ["\n## Serve it\n\n", *[f"{x}\n" for x in serve]]
    parts += ["\n## Steps\n\n", _md(["step", "status", "seconds", "note"], rep.steps)]
    return "".join(parts)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#1f2933;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em} h2{font-size:1.2em;margin-top:1.8em;border-bottom:1px solid #e4e7eb;
padding-bottom:.2em} table{border-collapse:collapse;margin:.6em 0;font-size:.88em}
th,td{border:1px solid #d9dee3;padding:.3em .55em;text-align:left;vertical-align:top} th{background:#f3f5f7}
td.num{text-align:right;font-variant-numeric:tabular-nums} .good{color:#1a7f37;font-weight:600}
.bad{color:#b42318;font-weight:600} .meh{color:#9a6700;font-weight:600} img{max-width:100%;height:auto}
.muted{color:#616e7c;font-size:.9em} pre{background:#f3f5f7;padding:.7em;overflow-x:auto;font-size:.85em}
ul.verdict li{margin:.3em 0}
"""


def render_html(rep: DemoReport) -> str:
    verdict_items = []
    for v in rep.verdicts:
        cls = "good" if "beats" in v else "bad" if "worse" in v else "meh" if "not shown" in v else ""
        verdict_items.append(
            f"<li class={cls or 'plain'}>{inline_md(v)}</li>" if cls else f"<li>{inline_md(v)}</li>"
        )
    parts = [
        "<!doctype html><html><head><meta charset=utf-8>",
        f"<title>{html.escape(rep.title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(rep.title)}</h1>",
        *[f"<p class=muted>{inline_md(x)}</p>" for x in rep.intro],
        "<h2>Verdict</h2><ul class=verdict>",
        *verdict_items,
        "</ul><h2>Table 1 on this machine</h2>",
        markdown_html_table(rep.table_head, rep.table),
        png_file_html(rep.images.get("scores"), "scores"),
        rep.deployment.html() if rep.deployment is not None else "",
        "<h2>The routed ecosystem</h2><ul>",
        *[f"<li>{inline_md(x)}</li>" for x in rep.ecosystem],
        "</ul>",
        rep.composed.html() if rep.composed is not None else "",
        "<h2>Robustness (answers that should not change)</h2>",
        markdown_html_table(rep.robustness_head, rep.robustness),
        "<h2>Routing</h2><ul>",
        *[f"<li>{inline_md(x)}</li>" for x in rep.routing],
        "</ul>",
        png_file_html(rep.images.get("confusion"), "routing confusion matrix"),
        "<h2>Where the models sit on the roofline</h2>",
        *[f"<p>{inline_md(x)}</p>" for x in rep.roofline],
        markdown_html_table(
            ["model", "role", "precision", "decode s/token (model)", "FLOP/byte"], rep.roofline_rows
        ),
        png_file_html(rep.images.get("roofline"), "roofline"),
        "<h2>Audit of the paper's numbers</h2>",
        *[f"<p>{inline_md(x)}</p>" for x in rep.audit_lines],
        markdown_html_table(["claim", "what", "paper", "recomputed", "note"], rep.audit_rows),
        "<h2>Serve it</h2>",
        *[
            f"<pre>{html.escape(x.strip('`').removeprefix('python').strip())}</pre>"
            if x.startswith("```")
            else f"<p>{inline_md(x)}</p>"
            for x in (rep.serve or ["_No ecosystem was written (see the steps below)._"])
        ],
        "<h2>Steps</h2>",
        markdown_html_table(["step", "status", "seconds", "note"], rep.steps),
        "</body></html>",
    ]
    return "\n".join(parts)
