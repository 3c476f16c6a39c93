// The graph by keyboard (docs/web.md, Keyboard): the graph SVG is one tab stop, and a roving
// focus moves across its nodes, told to screen readers through aria-activedescendant.
//   ← →          the node before or after in the focused node's row, as drawn (by x)
//   ↑ ↓          the nearest node (by x) in the row above or below (rows with no node skipped)
//   Home, End    the row's first or last node
//   Enter, Space what a click does: pin the node alone or unpin it (Shift: add it to the pins
//                or take it out); with "click deletes neurons" ticked, delete or restore it
//   Delete       with "click deletes neurons" ticked, delete it
// The focused node acts as a hovered one (its card, its edges on the overlay) and wears the
// focus ring, drawn by graph.js. Escape is left to the page, where it cancels jobs.
import { formatNumber } from "./store.js";

const MOVES = new Set(["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", "Home", "End"]);

// A layout's node positions by row (layout.rows' order: the input side's row first), each row
// sorted left to right.
export function rowsOf(L) {
  const index = new Map(L.rows.map((r, i) => [r.layer, i]));
  const rows = L.rows.map(() => []);
  for (const p of L.nodes) rows[index.get(p.node.layer)]?.push(p);
  for (const row of rows) row.sort((a, b) => a.x - b.x);
  return rows;
}

// The node that `key` moves the focus to from node `id` (itself at an end; null for another
// key or an id not in `rows`). Up is the row drawn above, the next layer toward the output.
export function nextNode(rows, id, key) {
  const r = rows.findIndex((row) => row.some((p) => p.node.id === id));
  if (r < 0 || !MOVES.has(key)) return null;
  const row = rows[r], i = row.findIndex((p) => p.node.id === id);
  if (key === "ArrowLeft") return row[Math.max(0, i - 1)].node.id;
  if (key === "ArrowRight") return row[Math.min(row.length - 1, i + 1)].node.id;
  if (key === "Home") return row[0].node.id;
  if (key === "End") return row.at(-1).node.id;
  const step = key === "ArrowUp" ? 1 : -1;
  let k = r + step;
  while (rows[k] && !rows[k].length) k += step;
  if (!rows[k]) return id;
  const x = row[i].x;  // ties: the left one
  return rows[k].reduce((best, p) => (Math.abs(p.x - x) < Math.abs(best.x - x) ? p : best)).node.id;
}

// What a screen reader says of a node: its id, group and vulnerability, pinned, deleted.
export function nodeLabel(node, { pins, masked }) {
  const vulnerability = node.vulnerability == null ? "no vulnerability"
    : `vulnerability ${formatNumber(node.vulnerability)}`;
  return [node.id, node.group, vulnerability, pins.includes(node.id) ? "pinned" : null,
          masked.includes(node.id) ? "deleted" : null].filter(Boolean).join(", ");
}

// `view`: {current() → the drawing ({graph, layout, nodeEls}) or null, activate(id, add),
// show(position) → pan it into view, ring(position or null) → place or hide the focus ring}.
// Answers {drawn() after each drawing, clicked(id), held() → the node a hover falls back to}.
export function createKeyboard(svgElement, store, view) {
  let focused = null;  // the focused node's id, kept across drawings of one analysis
  let graphOf = null;  // the analysis it belongs to
  let keyboard = false;  // the ring shows after keys, not after a click
  let rows = null, rowsFor = null;
  svgElement.setAttribute("role", "application");
  svgElement.setAttribute("aria-roledescription", "attribution graph");

  const active = () => document.activeElement === svgElement;
  const position = (id) => view.current()?.layout.nodes.find((p) => p.node.id === id) ?? null;
  function rowsNow() {
    const L = view.current().layout;
    if (rowsFor !== L) { rows = rowsOf(L); rowsFor = L; }
    return rows;
  }
  // Where the focus starts: the last pin, else the first node of the bottom row.
  function start() {
    const d = view.current();
    return store.get().pins.filter((id) => d.nodeEls.has(id)).at(-1) ??
      rowsNow().find((row) => row.length)?.[0].node.id ?? null;
  }

  // The ring, aria-activedescendant and the node's label follow `focused`.
  function mark() {
    const d = view.current();
    const p = d && focused ? position(focused) : null;
    view.ring(p && keyboard && active() ? p : null);
    svgElement.dataset.focus = p ? focused : "";
    if (!p) { svgElement.removeAttribute("aria-activedescendant"); return; }
    const el = d.nodeEls.get(focused);
    el.setAttribute("aria-label", nodeLabel(p.node, store.get()));
    svgElement.setAttribute("aria-activedescendant", el.id);
  }

  function focusNode(id) {
    if (id == null) return;
    focused = id;
    keyboard = true;
    mark();
    view.show(position(id));
    if (store.get().hover !== id) store.set({ hover: id });
  }

  svgElement.addEventListener("focus", () => {
    keyboard = svgElement.matches(":focus-visible");  // Tab, not a click
    if (keyboard && view.current()) focusNode(focused ?? start());
    else mark();
  });
  svgElement.addEventListener("blur", () => {
    const was = keyboard;
    keyboard = false;
    mark();
    if (was && focused && store.get().hover === focused) store.set({ hover: null });
  });
  svgElement.addEventListener("pointerdown", () => { keyboard = false; mark(); });
  svgElement.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || !view.current()) return;
    const { editMode, masked } = store.get();
    if (MOVES.has(event.key)) {
      event.preventDefault();
      const here = focused && view.current().nodeEls.has(focused);
      focusNode(here ? nextNode(rowsNow(), focused, event.key) : start());
    } else if ((event.key === "Enter" || event.key === " ") && focused) {
      event.preventDefault();
      view.activate(focused, event.shiftKey);
      focusNode(focused);
    } else if (event.key === "Delete" && editMode && focused) {
      event.preventDefault();
      if (!masked.includes(focused)) store.set({ masked: [...masked, focused] });
      focusNode(focused);
    }
  });

  return {
    drawn() {
      const d = view.current();
      if (!d) {
        svgElement.removeAttribute("tabindex");
        svgElement.setAttribute("aria-label", "Attribution graph: nothing shown");
        focused = null;
      } else {
        svgElement.setAttribute("tabindex", "0");
        svgElement.setAttribute("aria-label", `Attribution graph, ${d.graph.nodes.length} neurons in ` +
          `${d.graph.layers.length} layers: arrow keys move between neurons, Enter pins one`);
        if (d.graph !== graphOf || !d.nodeEls.has(focused)) focused = null;  // another analysis
        graphOf = d.graph;
      }
      mark();
    },
    clicked(id) { focused = id; keyboard = false; mark(); },
    held: () => (keyboard && active() && focused) || null,
  };
}
