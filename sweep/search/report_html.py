"""The LR report's page: one self-contained HTML file (styles inline, images as data URIs, one
tiny inline script that marks whether every image loaded; nothing from the network)."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1000px;margin:1.5em auto;padding:0 1em;
color:#1b1b1b;line-height:1.45}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;border-bottom:1px solid #ddd;padding-bottom:.2em;
margin-top:1.6em}
.meta{color:#555;font-size:.9em}.finding{margin:.35em 0}.trials{color:#555;font-size:.85em}
pre{background:#f4f4f4;padding:.6em;overflow-x:auto;white-space:pre-wrap;word-break:break-all;font-size:.85em}
table{border-collapse:collapse;font-size:.9em;margin:.4em 0}td,th{border:1px solid #ddd;padding:.2em .6em;
text-align:left}th{background:#f4f4f4}
.warn{border-left:4px solid #d9822b;background:#fff7ee;padding:.4em .8em;margin:.6em 0}
img{max-width:100%;height:auto;display:block;margin:.6em 0}
"""

CHECK_IMAGES = """
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.every(function (i) { return i.complete && i.naturalWidth > 0; });
  document.body.dataset.images = String(imgs.length);
  document.body.dataset.imagesOk = ok ? 'yes' : 'no';
});
"""


def esc(text: Any) -> str:
    return html.escape(str(text))


def trials_note(numbers: Sequence[int]) -> str:
    """ "(trials #2, #5)" after a finding; nothing without trials."""
    if not numbers:
        return ""
    return (
        f' <span class="trials">(trial{"s" if len(numbers) > 1 else ""} '
        + ", ".join(f"#{n}" for n in numbers)
        + ")</span>"
    )


def finding(text: str, numbers: Sequence[int] = ()) -> str:
    return f'<p class="finding">{esc(text)}{trials_note(numbers)}</p>'


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def command(text: str) -> str:
    return f"<pre>{esc(text)}</pre>"


def image(uri: str, alt: str) -> str:
    return f'<img src="{uri}" alt="{esc(alt)}">'


def warning(text: str, cmd: str, numbers: Sequence[int]) -> str:
    return f'<div class="warn">{esc(text)}{trials_note(numbers)}{command(cmd)}</div>'


def section(title: str, *parts: str) -> str:
    return f"<section><h2>{esc(title)}</h2>\n" + "\n".join(p for p in parts if p) + "\n</section>"


def page(title: str, meta: str, sections: Sequence[str]) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title><style>{STYLE}</style><script>{CHECK_IMAGES}</script></head>\n"
        f'<body><h1>{esc(title)}</h1><p class="meta">{esc(meta)}</p>\n' + "\n".join(sections) + "\n</body></html>\n"
    )


def budget_section(b: Mapping[str, Any]) -> str:
    states = ", ".join(f"{n} {s.lower()}" for s, n in sorted(b["states"].items())) or "none"
    parts = [finding(f"Trials by state: {states}.")]
    parts.append(finding(f"Epochs trained: {b['epochs']} in all; a complete trial trains {b['full_epochs']}."))
    if b["pruned"]:
        parts.append(finding(f"Pruning saved {b['saved']} epochs (the pruned trials' remaining epochs).", b["pruned"]))
    for kind, numbers in b["failures"].items():
        parts.append(finding(f"Failed: {len(numbers)} {kind}.", numbers))
    if b["wall_s"] is not None:
        parts.append(
            finding(
                f"Time: {b['wall_s']:.0f} s from the first trial's start to the last one's end; "
                f"{b['trial_s']:.0f} s of trial time in all."
            )
        )
    return section("Budget", *parts)
