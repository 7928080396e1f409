"""A report's page: its sections under their headings, with the style and the slider script inline
(the file opens offline and refers to nothing outside it).

May import: report.svg.
"""

from __future__ import annotations

from disgen.report.svg import escape

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#263238;color:#fff;padding:14px 28px}header h1{margin:0;font-size:20px;font-weight:600}
nav a{color:#b0bec5;margin-right:14px;text-decoration:none;font-size:13px}
main{max-width:1240px;margin:0 auto;padding:8px 28px 40px}
h2{border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:28px}h3{margin:18px 0 8px;font-size:15px}
table{border-collapse:collapse;background:#fff;margin:6px 0}
td,th{border:1px solid #e0e0e0;padding:3px 9px;text-align:left;vertical-align:top}
th{background:#eceff1;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
.tag{background:#fff3cd;border:1px solid #e0c46c;border-radius:3px;font-size:11px;padding:0 4px}
.note{color:#795548}.figures{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
figure{margin:0;background:#fff;border:1px solid #e0e0e0;padding:8px;max-width:100%}
figure img{display:block;max-width:100%;height:auto}img.zoom{image-rendering:pixelated}
figcaption{font-size:12px;color:#555;margin-top:4px;max-width:560px}
.chart .plot{fill:#fff;stroke:#bbb}.chart .grid{stroke:#eee}.chart text{font-size:11px;fill:#444}
.chart .chart-title{font-size:13px;font-weight:600;fill:#222}.chart .line{fill:none;stroke-width:1.8}
.legend{font-size:12px;max-width:380px}.legend span{margin-right:10px;white-space:nowrap}
.legend i,.swatch{display:inline-block;width:10px;height:10px;margin-right:4px;vertical-align:middle}
.frame-controls{display:flex;gap:8px;align-items:center;margin-top:6px}.frame-controls input{flex:1}
.frame-label{min-width:110px;font-size:12px}.row{display:flex;flex-wrap:wrap;gap:0 40px}
.row>section{flex:0 1 auto;min-width:0}.row>section:first-child{max-width:480px}
.row>section:first-child td{overflow-wrap:anywhere}
"""

# The epoch slider (and play button) of every .frames figure: swap the <img>'s source.
SCRIPT = """
for (const box of document.querySelectorAll("figure.frames")) {
  const frames = JSON.parse(box.querySelector("script").textContent);
  const img = box.querySelector("img"), slider = box.querySelector("input");
  const label = box.querySelector(".frame-label"), play = box.querySelector("button.play");
  const show = (i) => { slider.value = i; img.src = frames[i].src; label.textContent = frames[i].label; };
  slider.addEventListener("input", () => show(Number(slider.value)));
  if (play) {
    let timer = null;
    play.addEventListener("click", () => {
      if (timer) { clearInterval(timer); timer = null; play.textContent = "play"; return; }
      timer = setInterval(() => show((Number(slider.value) + 1) % frames.length), 500);
      play.textContent = "pause";
    });
  }
}
"""


Section = tuple[str, str]  # (heading, HTML)


def page(title: str, sections: list[Section | list[Section]]) -> str:
    """The whole document; a list of sections inside ``sections`` is laid out side by side."""
    anchor = lambda name: name.lower().replace(" ", "-")  # noqa: E731
    section = lambda n, html: f'<section id="{anchor(n)}"><h2>{escape(n)}</h2>{html}</section>'  # noqa: E731
    rows = [item if isinstance(item, list) else [item] for item in sections]
    nav = "".join(f'<a href="#{anchor(n)}">{escape(n)}</a>' for row in rows for n, _ in row)
    body = "".join(
        section(*row[0]) if len(row) == 1 else '<div class="row">' + "".join(section(*s) for s in row) + "</div>"
        for row in rows
    )
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<header><h1>{escape(title)}</h1><nav>{nav}</nav></header><main>{body}</main>"
        f"<script>{SCRIPT}</script></body></html>\n"
    )
