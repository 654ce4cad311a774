"""Small server-side SVG charts for the console: horizontal bars and line plots.

Plain SVG strings with no script and no inline style attributes (the CSP allows none); colours
come from classes in ``static/console.css``. Every text is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

__all__ = ["bars", "lines"]


def bars(items: Sequence[tuple[str, float]], *, width: int = 560, row: int = 22, label_width: int = 200, title: str = "",
         fmt: str = "{:+.4f}") -> str:
    """Horizontal bars centred on zero, one per (label, value), each labelled ``fmt.format(value)``; positive values go right (class ``pos``)."""
    if not items:
        return ""
    top = max(abs(v) for _, v in items) or 1.0
    plot = width - label_width - 70
    mid = label_width + plot / 2
    height = row * len(items) + 10
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" role="img" aria-label="{escape(title)}">']
    for i, (label, value) in enumerate(items):
        y = 5 + i * row
        w = abs(value) / top * plot / 2
        x = mid if value >= 0 else mid - w
        cls = "pos" if value >= 0 else "neg"
        out.append(f'<text x="{label_width - 6}" y="{y + row * 0.65:.1f}" text-anchor="end">{escape(label)}</text>')
        out.append(f'<rect class="{cls}" x="{x:.1f}" y="{y + 3}" width="{max(w, 0.5):.1f}" height="{row - 6}"/>')
        out.append(f'<text x="{label_width + plot + 6}" y="{y + row * 0.65:.1f}">{escape(fmt.format(value))}</text>')
    out.append(f'<line class="axis" x1="{mid:.1f}" y1="0" x2="{mid:.1f}" y2="{height}"/>')
    out.append("</svg>")
    return "".join(out)


def lines(series: Sequence[tuple[str, Sequence[tuple[float, float]]]], *, width: int = 360, height: int = 300,
          xlabel: str = "", ylabel: str = "", diagonal: bool = False) -> str:
    """Line plots of (name, [(x, y), ...]) on [0, 1] x [0, 1] axes (ROC curves, cumulative shares)."""
    pad = 40
    w, h = width - pad - 10, height - pad - 10

    def pt(x: float, y: float) -> str:
        return f"{pad + x * w:.1f},{10 + (1 - y) * h:.1f}"

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" role="img">',
           f'<rect class="frame" x="{pad}" y="10" width="{w}" height="{h}"/>']
    if diagonal:
        out.append(f'<polyline class="diag" points="{pt(0, 0)} {pt(1, 1)}"/>')
    for i, (name, points) in enumerate(series):
        out.append(f'<polyline class="s{i % 4}" points="{" ".join(pt(x, y) for x, y in points)}"/>')
        out.append(f'<text class="s{i % 4}" x="{pad + 8}" y="{26 + 14 * i}">{escape(name)}</text>')
    out.append(f'<text x="{pad + w / 2:.0f}" y="{height - 8}" text-anchor="middle">{escape(xlabel)}</text>')
    out.append(f'<text x="12" y="{10 + h / 2:.0f}" transform="rotate(-90 12 {10 + h / 2:.0f})" text-anchor="middle">{escape(ylabel)}</text>')
    out.append("</svg>")
    return "".join(out)
