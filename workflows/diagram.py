"""Draw a workflow as a self-contained SVG (no Graphviz, no JavaScript, no internet).

The state vocabulary is small and fixed, so each state carries its place on the drawing
(``State.pos``); edges are straight, or bent where two edges would overlap or a line would cross a
box. The current state is filled, states the case has passed through are tinted, and the actions
possible now are drawn bold.
"""

from __future__ import annotations

import math
from html import escape

from workflows import definitions as d

CELL_X, CELL_Y = 215, 125
BOX_W, BOX_H = 172, 44
MARGIN_X, MARGIN_TOP, MARGIN_BOTTOM = 90, 125, 45

#: Perpendicular bend of some edges, in cells (positive bends to the left of the direction of travel).
BENDS = {
    ("grid_handling", "firm_dispatched"): 1.0,  # arc over the party branch
    ("firm_dispatched", "grid_handling"): 0.8,  # and back underneath it
}
PAIR_BEND = 0.3  # two edges between the same states in opposite directions

COLORS = {
    "node": "#ffffff",
    "node_border": "#9aa3ad",
    "text": "#1f2328",
    "current": "#b3261e",
    "current_text": "#ffffff",
    "visited": "#fde7e4",
    "edge": "#8c959f",
    "edge_now": "#b3261e",
    "label_bg": "#f6f7f9",
    "terminal_border": "#1f2328",
}


def _center(state: d.State) -> tuple[float, float]:
    col, row = state.pos
    return MARGIN_X + col * CELL_X, MARGIN_TOP + row * CELL_Y


def _clip(cx: float, cy: float, tx: float, ty: float) -> tuple[float, float]:
    """Where the line from a box centre towards (tx, ty) leaves the box."""
    dx, dy = tx - cx, ty - cy
    if dx == 0 and dy == 0:
        return cx, cy
    scale = min((BOX_W / 2) / abs(dx) if dx else math.inf, (BOX_H / 2) / abs(dy) if dy else math.inf)
    return cx + dx * scale, cy + dy * scale


def _text_width(text: str, size: float) -> float:
    return sum(size if ord(ch) > 0x2E80 else size * 0.56 for ch in text)


def render_svg(
    workflow: d.Workflow,
    lang: str = "zh",
    current: str | None = None,
    visited: set[str] | frozenset[str] = frozenset(),
    possible: set[str] | frozenset[str] = frozenset(),
    title: str | None = None,
) -> str:
    """Return an ``<svg>`` of ``workflow``; ``current`` is highlighted, ``possible`` triggers drawn bold."""
    edges: dict[tuple[str, str], list[str]] = {}
    for transition in workflow.transitions:
        labels = edges.setdefault((transition.source, transition.dest), [])
        if transition.trigger not in labels:
            labels.append(transition.trigger)

    positions = {name: _center(state) for name, state in d.STATES.items()}
    cols = [s.pos[0] for s in d.STATES.values()]
    rows = [s.pos[1] for s in d.STATES.values()]
    width = MARGIN_X * 2 + (max(cols) - min(cols)) * CELL_X
    height = MARGIN_TOP + MARGIN_BOTTOM + (max(rows) - min(rows)) * CELL_Y
    label = title or workflow.label(lang)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="workflow-diagram" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'role="img" aria-label="{escape(label)}" font-family="system-ui, -apple-system, \'PingFang SC\', '
        f"'Microsoft YaHei', sans-serif\">",
        f"<title>{escape(label)}</title>",
        "<defs>",
        f'<marker id="wf-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="9" markerHeight="9" '
        f'orient="auto-start-reverse" markerUnits="userSpaceOnUse"><path d="M0,0 L10,5 L0,10 z" '
        f'fill="{COLORS["edge"]}"/></marker>',
        f'<marker id="wf-arrow-now" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="10" markerHeight="10" '
        f'orient="auto-start-reverse" markerUnits="userSpaceOnUse"><path d="M0,0 L10,5 L0,10 z" '
        f'fill="{COLORS["edge_now"]}"/></marker>',
        "</defs>",
    ]
    labels_svg = []
    for (source, dest), triggers in edges.items():
        (sx, sy), (tx, ty) = positions[source], positions[dest]
        bend = BENDS.get((source, dest))
        if bend is None:
            bend = PAIR_BEND if (dest, source) in edges else 0.0
        length = math.hypot(tx - sx, ty - sy)
        nx, ny = (ty - sy) / length, -(tx - sx) / length  # left of the direction of travel (SVG y down)
        mx, my = (sx + tx) / 2, (sy + ty) / 2
        qx, qy = mx + nx * bend * CELL_Y, my + ny * bend * CELL_Y
        x1, y1 = _clip(sx, sy, qx if bend else tx, qy if bend else ty)
        x2, y2 = _clip(tx, ty, qx if bend else sx, qy if bend else sy)
        now = source == current and any(t in possible for t in triggers)
        color = COLORS["edge_now"] if now else COLORS["edge"]
        marker = "wf-arrow-now" if now else "wf-arrow"
        stroke = 2.4 if now else 1.3
        if bend:
            path = f"M{x1:.1f},{y1:.1f} Q{qx:.1f},{qy:.1f} {x2:.1f},{y2:.1f}"
            lx, ly = 0.25 * x1 + 0.5 * qx + 0.25 * x2, 0.25 * y1 + 0.5 * qy + 0.25 * y2
        else:
            path = f"M{x1:.1f},{y1:.1f} L{x2:.1f},{y2:.1f}"
            lx, ly = (x1 + x2) / 2, (y1 + y2) / 2
            if abs(y2 - y1) < 1:  # a short horizontal hop: the label sits above the boxes
                ly -= BOX_H / 2 + 10
        names = " / ".join(d.TRIGGERS[t].label(lang) for t in triggers)
        out.append(
            f'<path class="wf-edge{" wf-edge-now" if now else ""}" data-triggers="{" ".join(triggers)}" d="{path}" '
            f'fill="none" stroke="{color}" stroke-width="{stroke}" marker-end="url(#{marker})"><title>'
            f"{escape(names)}</title></path>"
        )
        size = 10.5
        w = _text_width(names, size) + 8
        if bend and (dest, source) in edges and (source, dest) not in BENDS:
            # two edges side by side: move each label outwards so they do not overlap
            push = abs(nx) * (w / 2 + 2) + abs(ny) * 9
            lx, ly = lx + nx * push * (1 if bend > 0 else -1), ly + ny * push * (1 if bend > 0 else -1)
        weight = ' font-weight="600"' if now else ""
        labels_svg.append(
            f'<g class="wf-label"><rect x="{lx - w / 2:.1f}" y="{ly - 8:.1f}" width="{w:.1f}" height="15" rx="3" '
            f'fill="{COLORS["label_bg"]}" opacity="0.92"/><text x="{lx:.1f}" y="{ly + 3.5:.1f}" font-size="{size}" '
            f'text-anchor="middle" fill="{color}"{weight}>{escape(names)}</text></g>'
        )
    out.extend(labels_svg)
    for name, state in d.STATES.items():
        cx, cy = positions[name]
        is_current = name == current
        fill = COLORS["current"] if is_current else COLORS["visited"] if name in visited else COLORS["node"]
        border = (
            COLORS["current"] if is_current else COLORS["terminal_border"] if state.terminal else COLORS["node_border"]
        )
        text_color = COLORS["current_text"] if is_current else COLORS["text"]
        classes = "wf-node" + (" wf-current" if is_current else "") + (" wf-visited" if name in visited else "")
        aria = ' aria-current="step"' if is_current else ""
        weight = ' font-weight="700"' if is_current else ""
        out.append(
            f'<g class="{classes}" data-state="{name}"'
            f"{aria}>"
            f'<rect x="{cx - BOX_W / 2:.1f}" y="{cy - BOX_H / 2:.1f}" width="{BOX_W}" height="{BOX_H}" rx="9" '
            f'fill="{fill}" stroke="{border}" stroke-width="{2.5 if is_current or state.terminal else 1.2}"/>'
            f'<text x="{cx:.1f}" y="{cy + 4.5:.1f}" font-size="{13 if lang != "en" else 11.5}" text-anchor="middle" '
            f'fill="{text_color}"{weight}>{escape(state.label(lang))}</text>'
            f"</g>"
        )
    out.append("</svg>")
    return "\n".join(out)
