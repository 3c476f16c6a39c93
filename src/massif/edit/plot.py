"""Deletion curves as a picture, without a plotting library: SVG written by hand, PNG drawn with
Pillow, both from one list of shapes so they show the same thing.

Two charts side by side, one line per ranking (random: its mean, dashed, in a band of ± one
standard deviation over the draws): the ASR at ε_max against ``k`` (on a ``log2(1 + k)`` axis)
and against the cost (the larger of the benign and the target classes' clean-accuracy losses;
points joined in ``k`` order).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .curves import Curves

WIDTH, HEIGHT = 980, 470
PANEL_W, PANEL_H = 400, 300
TOP, LEFT, GAP = 50, 60, 90
COLORS = {
    "vulnerability": "#d62728", "importance-change": "#ff7f0e", "activation-change": "#1f77b4",
    "gradient-x-activation": "#2ca02c", "votes": "#9467bd", "random": "#555555",
}


@dataclass
class Shape:
    kind: str  # line (points), band (points, filled), dot, text
    points: list[tuple[float, float]]
    color: str = "#000000"
    width: float = 1.0
    dashed: bool = False
    text: str = ""
    size: int = 12
    anchor: str = "start"  # start, middle, end
    opacity: float = 1.0
    extra: dict = field(default_factory=dict)


def shapes(c: Curves) -> list[Shape]:
    """Everything to draw, in pixels (origin top left)."""
    out: list[Shape] = [Shape("text", [(WIDTH / 2, 22)], size=14, anchor="middle", text=(
        f"{c.benign} → {c.target}, {c.attack} at ε = {c.epsilon:g}: deleting the top k "
        "neurons of each ranking"))]
    max_k = max([p.k for cv in c.curves for p in cv.points] + [1])
    x_k = lambda k: math.log2(1 + k) / math.log2(1 + max_k)  # noqa: E731
    first = next((cv.points[0] for cv in c.curves if cv.points), None)
    c_max = max(first.clean_accuracy, first.target_accuracy) if first else 1.0
    c_max = c_max or 1.0
    x_c = lambda cost: min(max(cost, 0.0), c_max) / c_max  # noqa: E731
    ticks_k = [k for k in (0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512) if k <= max_k]
    panels = [
        (LEFT, "k (neurons deleted, log scale)", [(x_k(k), str(k)) for k in ticks_k],
         lambda p: x_k(p.k)),
        (LEFT + PANEL_W + GAP, f"cost: larger clean-accuracy loss of {c.benign} and "
         f"{c.target} (points)", [(t / (100 * c_max), str(t)) for t in (0, 25, 50, 75, 100)
                                   if t <= 100 * c_max + 1e-9],
         lambda p: x_c(p.cost)),
    ]
    for x0, xlabel, xticks, xof in panels:
        px = lambda u, x0=x0: x0 + u * PANEL_W  # noqa: E731
        py = lambda v: TOP + (1 - v) * PANEL_H  # noqa: E731
        out.append(Shape("line", [(px(0), py(0)), (px(1), py(0))], "#888888"))
        out.append(Shape("line", [(px(0), py(0)), (px(0), py(1))], "#888888"))
        for i in range(5):
            v = i / 4
            out.append(Shape("line", [(px(0), py(v)), (px(1), py(v))], "#e5e5e5"))
            out.append(Shape("text", [(px(0) - 6, py(v) + 4)], text=f"{100 * v:.0f}%",
                             size=11, anchor="end", color="#555555"))
        for u, label in xticks:
            out.append(Shape("line", [(px(u), py(0)), (px(u), py(0) + 4)], "#888888"))
            out.append(Shape("text", [(px(u), py(0) + 17)], text=label, size=11,
                             anchor="middle", color="#555555"))
        out.append(Shape("text", [(px(0.5), py(0) + 36)], text=xlabel, size=12,
                         anchor="middle"))
        out.append(Shape("text", [(px(0), TOP - 8)], text=f"ASR at ε = {c.epsilon:g}",
                         size=12))
        for cv in c.curves:
            color = COLORS.get(cv.ranking, "#000000")
            pts = [(px(xof(p)), py(p.asr)) for p in cv.points]
            if cv.ranking == "random" and len(cv.points) > 1:
                lo = [(px(xof(p)), py(max(0.0, p.asr - (p.asr_std or 0)))) for p in cv.points]
                hi = [(px(xof(p)), py(min(1.0, p.asr + (p.asr_std or 0)))) for p in cv.points]
                out.append(Shape("band", lo + hi[::-1], color, opacity=0.15))
            if len(pts) > 1:
                out.append(Shape("line", pts, color, width=2,
                                 dashed=cv.ranking == "random"))
            out += [Shape("dot", [pt], color, width=3) for pt in pts]
    y = TOP + PANEL_H + 62
    x = LEFT
    for cv in c.curves:
        color = COLORS.get(cv.ranking, "#000000")
        area = "—" if cv.auc_cost is None else f"{cv.auc_cost:.2f}"
        label = f"{cv.ranking} (AUC cost {area})"
        out.append(Shape("line", [(x, y - 4), (x + 22, y - 4)], color, width=2,
                         dashed=cv.ranking == "random"))
        out.append(Shape("text", [(x + 28, y)], text=label, size=11))
        x += 28 + 7 * len(label) + 18
        if x > WIDTH - 200:
            x, y = LEFT, y + 18
    return out


def curves_svg(c: Curves) -> str:
    """The charts as a standalone SVG document."""
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif">',
             f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>']
    for s in shapes(c):
        pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in s.points)
        if s.kind == "line":
            dash = ' stroke-dasharray="6 4"' if s.dashed else ""
            parts.append(f'<polyline points="{pts}" fill="none" stroke="{s.color}" '
                         f'stroke-width="{s.width:g}"{dash}/>')
        elif s.kind == "band":
            parts.append(f'<polygon points="{pts}" fill="{s.color}" '
                         f'fill-opacity="{s.opacity:g}" stroke="none"/>')
        elif s.kind == "dot":
            (x, y), = s.points
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{s.width:g}" '
                         f'fill="{s.color}"/>')
        else:
            (x, y), = s.points
            parts.append(f'<text x="{x:.1f}" y="{y:.1f}" font-size="{s.size}" '
                         f'text-anchor="{s.anchor}" fill="{s.color}">{escape(s.text)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


_ASCII = str.maketrans({"ε": "eps", "→": "->", "−": "-", "±": "+/-", "—": "-", "×": "x"})


def curves_png(c: Curves) -> bytes:
    """The same charts as PNG bytes (Pillow; text in ASCII, which every Pillow font has)."""
    from PIL import Image, ImageDraw, ImageFont

    def font(size: int):  # noqa: ANN202
        try:
            return ImageFont.load_default(size=size)
        except TypeError:  # Pillow < 10.1: one bitmap size
            return ImageFont.load_default()

    img = Image.new("RGBA", (WIDTH, HEIGHT), "#ffffff")
    draw = ImageDraw.Draw(img)
    for s in shapes(c):
        if s.kind == "band":
            layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
            rgb = tuple(int(s.color[i : i + 2], 16) for i in (1, 3, 5))
            ImageDraw.Draw(layer).polygon(s.points, fill=(*rgb, round(255 * s.opacity)))
            img.alpha_composite(layer)
            draw = ImageDraw.Draw(img)
        elif s.kind == "line":
            width = max(1, round(s.width))
            for a, b in zip(s.points, s.points[1:]):
                if s.dashed:
                    _dashed(draw, a, b, s.color, width)
                else:
                    draw.line([a, b], fill=s.color, width=width)
        elif s.kind == "dot":
            (x, y), = s.points
            r = s.width
            draw.ellipse([x - r, y - r, x + r, y + r], fill=s.color)
        else:
            (x, y), = s.points
            text = s.text.translate(_ASCII)
            f = font(s.size)
            w = draw.textlength(text, font=f)
            dx = {"start": 0, "middle": -w / 2, "end": -w}[s.anchor]
            draw.text((x + dx, y - s.size), text, fill=s.color, font=f)
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="PNG")
    return buf.getvalue()


def _dashed(draw: object, a: tuple[float, float], b: tuple[float, float], color: str,
            width: int, on: float = 6, off: float = 4) -> None:
    (x0, y0), (x1, y1) = a, b
    length = math.hypot(x1 - x0, y1 - y0)
    t = 0.0
    while t < length:
        t1 = min(t + on, length)
        p = (x0 + (x1 - x0) * t / length, y0 + (y1 - y0) * t / length)
        q = (x0 + (x1 - x0) * t1 / length, y0 + (y1 - y0) * t1 / length)
        draw.line([p, q], fill=color, width=width)  # type: ignore[attr-defined]
        t = t1 + off
