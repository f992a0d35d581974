#!/usr/bin/python3
"""Draws results.json of warren-bench as an SVG: one small bar chart per
figure, Warren against direct, the bar at the median with a min-max whisker.

    bench/plot.py results.json plot.svg

Standard library only (hand-written SVG).
"""
import json
import math
import sys
from xml.sax.saxutils import escape

COLUMNS = 3
PANEL_W, PANEL_H = 330, 128
BAR_H = 22
LEFT = 62  # room for the side labels
WARREN, DIRECT = "#2f6db5", "#9a9a9a"


def short(row):
    figure = row["figure"]
    cut = figure.find(" (")
    if cut > 0:
        figure = figure[:cut]
    return f"{row['scenario']}: {figure}"


def wrap(text, width=52):
    words, lines, line = text.split(), [], ""
    for w in words:
        if len(line) + len(w) + 1 > width and line:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}".strip()
    if line:
        lines.append(line)
    return lines[:2]


def fmt(v):
    if v is None:
        return "n/a"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.1f}"
    if a >= 10:
        return f"{v:.2f}"
    return f"{v:.3f}"


def panel(row, x, y):
    out = [f'<g transform="translate({x},{y})">',
           f'<rect width="{PANEL_W - 10}" height="{PANEL_H - 10}" '
           f'fill="#fafafa" stroke="#ddd"/>']
    for i, line in enumerate(wrap(short(row))):
        out.append(f'<text x="8" y="{16 + 13 * i}" font-size="11" '
                   f'font-weight="bold">{escape(line)}</text>')
    sides = [("Warren", row["warren"], WARREN), ("direct", row["direct"], DIRECT)]
    top = max([s[1]["max"] or 0 for s in sides] + [s[1]["median"] or 0 for s in sides])
    scale_w = PANEL_W - LEFT - 90
    for i, (name, side, color) in enumerate(sides):
        by = 44 + i * (BAR_H + 8)
        out.append(f'<text x="8" y="{by + 15}" font-size="11">{name}</text>')
        med = side["median"]
        if med is None or top <= 0:
            out.append(f'<text x="{LEFT}" y="{by + 15}" font-size="11" '
                       f'fill="#a00">n/a</text>')
            continue
        w = max(1.0, scale_w * med / top)
        out.append(f'<rect x="{LEFT}" y="{by}" width="{w:.1f}" height="{BAR_H}" '
                   f'fill="{color}"/>')
        lo, hi = side["min"], side["max"]
        if lo is not None and hi is not None and hi > lo:
            x0 = LEFT + scale_w * lo / top
            x1 = LEFT + scale_w * hi / top
            cy = by + BAR_H / 2
            out.append(f'<line x1="{x0:.1f}" y1="{cy}" x2="{x1:.1f}" y2="{cy}" '
                       f'stroke="#222" stroke-width="1.2"/>')
            for xx in (x0, x1):
                out.append(f'<line x1="{xx:.1f}" y1="{cy - 5}" x2="{xx:.1f}" '
                           f'y2="{cy + 5}" stroke="#222" stroke-width="1.2"/>')
        label_x = LEFT + max(w, scale_w * (hi or med) / top) + 5
        out.append(f'<text x="{label_x:.1f}" y="{by + 15}" font-size="11">'
                   f'{escape(fmt(med))} {escape(row["unit"])}</text>')
    ratio = row.get("ratio")
    note = f"ratio {ratio:.2f}x" if ratio is not None else "ratio n/a"
    if row.get("target"):
        met = row.get("met")
        mark = {True: "met", False: "missed", None: "n/a"}[met]
        note += f" · target {row['target']}: {mark}"
    better = "higher is better" if row["higher_is_better"] else "lower is better"
    out.append(f'<text x="8" y="{PANEL_H - 18}" font-size="10" fill="#444">'
               f'{escape(note)} ({better})</text>')
    out.append("</g>")
    return out


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        results = json.load(f)
    rows = [r for r in results["rows"]
            if r.get("plot", True)
            and (r["warren"]["median"] is not None or r["direct"]["median"] is not None)]
    n_rows = max(1, math.ceil(len(rows) / COLUMNS))
    width = COLUMNS * PANEL_W + 20
    height = n_rows * PANEL_H + 60
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" '
           f'height="{height}" viewBox="0 0 {width} {height}" '
           f'font-family="sans-serif">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="10" y="22" font-size="15" font-weight="bold">'
           f'Warren vs direct: {escape(results.get("label", ""))}</text>',
           f'<text x="10" y="40" font-size="11" fill="#444">bar: median of '
           f'{results.get("runs")} runs; whisker: min-max; '
           f'<tspan fill="{WARREN}">Warren</tspan> vs '
           f'<tspan fill="{DIRECT}">direct rabbitmq-c / ZooKeeper C client'
           f'</tspan></text>']
    for i, row in enumerate(rows):
        x = 10 + (i % COLUMNS) * PANEL_W
        y = 50 + (i // COLUMNS) * PANEL_H
        svg.extend(panel(row, x, y))
    svg.append("</svg>")
    with open(sys.argv[2], "w") as f:
        f.write("\n".join(svg) + "\n")


if __name__ == "__main__":
    main()
