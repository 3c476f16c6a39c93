// The header's *export* menu: the graph as shown (SVG, PNG) and its numbers (JSON, CSV).
//
// The figure is the graph SVG as drawn now (zoom, strength, edge view, the edges per neuron
// shown and no others, pathway, pins and their traced edges, deletions, defense picks, the
// image's bars) under a legend drawn in SVG for it, with the page's style sheet inside and the
// pictures as data: URIs, so the file stands alone. For print in black and white, each node
// carries a black mark for its group (▼ suppressed, ● shared, ▲ emphasized), repeated in the
// legend, and the text is black in a common sans-serif. The PNG is the same SVG drawn at twice
// its size.
//
// The numbers follow massif/export.py's `Numbers` (numbers.json), the same format `massif
// report --numbers` writes: nodes at ε_0 and at the slider's ε, edges (each `shown` or not by
// the edges per neuron), ASR per strength, and the deletion's, the defense's and the deletion
// curves' numbers where they exist; each table also as a CSV file.
import * as api from "./api.js";
import { attackChoice } from "./controls.js";
import { download } from "./download.js";
import { shownEdges } from "./edgetop.js";
import { edgeId } from "./pathways.js";
import { CHANGE_COLORS, COLORS, EDGE_COLORS, divergenceAt, flipped, formatNumber, formatPercent,
  vulnerabilityColor } from "./store.js";

const $ = (id) => document.getElementById(id);
const NS = "http://www.w3.org/2000/svg";
const FONT = "Helvetica, Arial, sans-serif";
const MARKS = { suppressed: "▼", shared: "●", emphasized: "▲" };
// Rules added to the page's style sheet in a figure: black text for print.
const PRINT_CSS = `
svg.massif-figure text { font-family: ${FONT}; }
svg.massif-figure .row-label, svg.massif-figure .divergence-tag,
svg.massif-figure .crossed-text, svg.massif-figure .legend text { fill: #000; }
svg.massif-figure .bw-mark { font-size: var(--mark); fill: #000; stroke: #fff; stroke-width: 2px;
  paint-order: stroke; text-anchor: middle; dominant-baseline: central; font-weight: 400; }
`;

// The tables' columns, as massif/export.py has them.
const COLUMNS = {
  "nodes.csv": ["id", "layer", "channel", "group", "vulnerability", "flip_strength", "flipped",
    "activation_clean", "activation", "importance_benign_clean", "importance_benign",
    "importance_target_clean", "importance_target", "pinned", "deleted"],
  "edges.csv": ["source", "target", "influence_benign", "influence_attacked", "change", "shown"],
  "asr.csv": ["k", "epsilon", "attack_success_rate", "divergence_layer"],
  "deletion.csv": ["measure", "k", "epsilon", "before", "after"],
  "defense.csv": ["curve", "size", "adaptive_asr", "clean_accuracy", "clean_accuracy_benign", "mask"],
  "curves.csv": ["ranking", "k", "asr", "asr_std", "clean_accuracy", "target_accuracy", "margin",
    "adaptive_asr"],
};

function cell(v) {
  if (v == null) return "";
  if (Array.isArray(v)) v = v.join(" ");
  const s = String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}
export function toCsv(rows, columns) {
  return [columns.join(","), ...rows.map((r) => columns.map((c) => cell(r[c])).join(","))]
    .join("\n") + "\n";
}

// numbers.json for the view in `state` (see massif/export.py).
export function viewNumbers(state, { deletion = null, defense = null, curves = null } = {}) {
  const { graph, key } = state;
  const K = graph.attack.strengths;
  const k = state.strengthIndex ?? K.length - 1;
  const eps = K[k];
  const pins = new Set(state.pins), masked = new Set(state.masked);
  const shown = shownEdges(graph.edges, state.edgeMode, state.topEdges);
  return {
    format: "massif-numbers", version: 1, key, model: graph.model.name, dataset: graph.dataset.name,
    benign: graph.benign.name, target: graph.target.name,
    attack: attackChoice(graph, state.info ?? {}),  // the registry's label (pgd-l2)
    targeted: graph.attack.targeted, strengths: K, clean_accuracy: graph.metrics.clean_accuracy,
    view: { strength_index: k, epsilon: eps, pins: state.pins, masked: state.masked,
            mask_mode: state.maskMode, edge_mode: state.edgeMode, highlight: state.highlight,
            edges_per_neuron: state.topEdges === "all" ? null : Number(state.topEdges) },
    nodes: graph.nodes.map((n) => ({
      id: n.id, layer: n.layer, channel: n.channel, group: n.group, vulnerability: n.vulnerability,
      flip_strength: n.flip_strength, flipped: n.group === "shared" ? null : flipped(n, eps),
      activation_clean: n.activation[0], activation: n.activation[k],
      importance_benign_clean: n.importance_benign[0], importance_benign: n.importance_benign[k],
      importance_target_clean: n.importance_target[0], importance_target: n.importance_target[k],
      pinned: pins.has(n.id), deleted: masked.has(n.id),
    })),
    edges: graph.edges.map((e) => ({ source: e.source, target: e.target,
      influence_benign: e.influence_benign, influence_attacked: e.influence_attacked,
      change: e.influence_attacked - e.influence_benign, shown: shown.has(edgeId(e)) })),
    asr: K.map((s, i) => ({ k: i, epsilon: s, attack_success_rate: graph.metrics.attack_success_rate[i],
      divergence_layer: divergenceAt(graph, i) })),
    deletion, defense, curves,
  };
}

// Each table's rows by CSV file name; deletion, defense and curves only where present.
export function tables(n) {
  const out = { "nodes.csv": n.nodes, "edges.csv": n.edges, "asr.csv": n.asr };
  const d = n.deletion;
  if (d) {
    const rows = ["clean_accuracy_benign", "clean_accuracy_all"].map((m) =>
      ({ measure: m, before: d[m].before, after: d[m].after }));
    for (const m of ["transfer_asr", "adaptive_asr"]) {
      if (d[m]) d.strengths.forEach((eps, i) =>
        rows.push({ measure: m, k: i, epsilon: eps, before: d[m].before[i], after: d[m].after[i] }));
    }
    out["deletion.csv"] = rows;
  }
  if (n.defense) {
    const point = (curve, p) => ({ curve, ...p });
    const f = n.defense;
    out["defense.csv"] = [point("unedited", f.before), ...f.greedy.map((p) => point("greedy", p)),
      ...f.top_emphasized.map((p) => point("top emphasized", p)), ...f.random.map((p) => point("random", p))];
  }
  if (n.curves) {
    out["curves.csv"] = n.curves.curves.flatMap((c) => c.points.map((p) => ({ ranking: c.ranking, ...p })));
  }
  return out;
}

// ---- the figure ---------------------------------------------------------------------------

const dataUris = new Map();  // picture URL → data: URI, kept across exports
async function dataUri(url) {
  if (url.startsWith("data:")) return url;
  if (!dataUris.has(url)) {
    const blob = await (await fetch(url)).blob();
    dataUris.set(url, await new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(reader.result);
      reader.onerror = () => reject(reader.error);
      reader.readAsDataURL(blob);
    }));
  }
  return dataUris.get(url);
}

function el(name, attrs = {}, text = null) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) if (v != null) e.setAttribute(k, v);
  if (text != null) e.textContent = text;
  return e;
}

// The group mark of every node in `root` (a clone of the graph or of its overlay).
function addMarks(root) {
  for (const node of root.querySelectorAll(".node")) {
    const group = ["suppressed", "shared", "emphasized"].find((g) => node.classList.contains(g));
    const frame = node.querySelector("rect.frame");
    if (!group || !frame) continue;
    const s = +frame.getAttribute("width");
    const size = Math.max(6, Math.min(12, s * 0.3));
    const mark = el("text", { class: "bw-mark", x: s / 2 - size * 0.45, y: -s / 2 + size * 0.45,
                              style: `--mark:${size}px` }, MARKS[group]);
    node.append(mark);
  }
}

// The legend's items for the view: [{swatch: (g) => void, text}], in reading order.
function legendItems(state) {
  const { graph, edgeMode, highlight, pins, masked, greedy, imageDetail } = state;
  const K = graph.attack.strengths, k = state.strengthIndex ?? K.length - 1;
  const eps = formatNumber(K[k]), epsMax = formatNumber(K.at(-1));
  const box = (fill, mark, extra = {}) => (g) => {
    g.append(el("rect", { width: 14, height: 14, rx: 2, fill, ...extra }));
    if (mark) g.append(el("text", { class: "bw-mark", x: 10, y: 4, style: "--mark:9px" }, mark));
  };
  const items = [
    { swatch: box(COLORS.suppressed, MARKS.suppressed), text: "suppressed: benign graph only" },
    { swatch: box(COLORS.shared, MARKS.shared), text: "shared: both" },
    { swatch: box(COLORS.emphasized, MARKS.emphasized), text: "emphasized: attacked graph only" },
    { swatch: (g) => {
      for (const [i, c] of [[0, COLORS.suppressed], [1, COLORS.emphasized]]) {
        const id = `ramp-${i}`;
        const grad = el("linearGradient", { id });
        const ends = [vulnerabilityColor(c, 0), c];  // least to most vulnerable, toward the middle
        if (i === 1) ends.reverse();
        grad.append(el("stop", { offset: 0, "stop-color": ends[0] }), el("stop", { offset: 1, "stop-color": ends[1] }));
        g.append(grad, el("rect", { x: i * 26, y: 2, width: 24, height: 10, fill: `url(#${id})` }));
      }
    }, width: 50, text: "more vulnerable: nearer the middle, full colour (less: paler)" },
    { swatch: box("#fff4d6", null, { stroke: "#a66b00" }),
      text: `◆ divergence layer at ε = ${eps}; bar: % of attacked images crossed` },
    { swatch: box("#ccc", null, { opacity: 0.3 }), text: `faded: not flipped by ε = ${eps}, with its edges` },
  ];
  if (graph.nodes.some((n) => !state.pictures?.pictures[n.id])) {
    items.push({ swatch: box("#fff", null, { stroke: "#999", "stroke-dasharray": "3 2", "stroke-width": 2 }),
                 text: "no feature visualization" });
  }
  const line = (color) => (g) => g.append(el("line", { x1: 0, y1: 7, x2: 30, y2: 7, stroke: color, "stroke-width": 4 }));
  const measured = k !== K.length - 1 ? ` (measured at ε_max = ${epsMax}, not at ε = ${eps})` : "";
  if (edgeMode === "change") {
    const change = (g) => {
      const grad = el("linearGradient", { id: "change-ramp" });
      grad.append(...["lost", "none", "gained"].map((c, i) =>
        el("stop", { offset: i / 2, "stop-color": CHANGE_COLORS[c] })));
      g.append(grad, el("rect", { y: 4, width: 30, height: 6, fill: "url(#change-ramp)" }));
    };
    items.push({ swatch: change, width: 30, text: `edges: change in influence, attacked − benign (lavender lost, wine gained), width ∝ √|change|${measured}` });
  } else if (edgeMode === "benign") {
    items.push({ swatch: line(EDGE_COLORS.benign), width: 30, text: "edges: influence on clean images, width ∝ √influence" });
  } else {
    items.push({ swatch: line(EDGE_COLORS.attacked), width: 30, text: `edges: influence on images attacked at ε = ${epsMax}, width ∝ √influence${measured}` });
  }
  const M = graph.edges.length;
  items.push({ swatch: () => {}, width: 0, text: state.topEdges === "all" ? `showing all ${M} edges`
    : `showing ${shownEdges(graph.edges, edgeMode, state.topEdges).size} of ${M} edges (top ${state.topEdges} per neuron)` });
  if (highlight && highlight !== "none") {
    items.push({ swatch: box("none", null, { stroke: "#111", "stroke-width": 3 }), text: `black rings: the ${$("highlight").selectedOptions[0]?.text ?? highlight} pathway at ε = ${eps}` });
  }
  if (pins.length) {
    items.push({ swatch: (g) => g.append(el("rect", { x: 1, y: 1, width: 12, height: 12, rx: 2, fill: "none", stroke: "#222", "stroke-width": 5 }),
                                         el("rect", { x: 1, y: 1, width: 12, height: 12, rx: 2, fill: "none", stroke: "#f0e442", "stroke-width": 3 })),
                 text: `pinned (yellow ring, traced): ${pins.join(", ")}` });
  }
  if (masked.length) {
    items.push({ swatch: (g) => g.append(el("path", { d: "M2,2L12,12M12,2L2,12", stroke: "#000", "stroke-width": 2 })),
                 text: `deleted (${state.maskMode === "mean" ? "set to the benign mean" : "set to 0"}): ${masked.join(", ")}` });
  }
  if (greedy.length) items.push({ swatch: box("none", null, { stroke: "#1a9641", "stroke-width": 3 }), text: `green rings: the defense's picks: ${greedy.join(", ")}` });
  if (imageDetail) items.push({ swatch: box("#eee"), text: `bars: image #${imageDetail.position}'s activation, clean (grey) and at ε = ${eps} (orange)` });
  return items;
}

// The legend as an SVG group `width` px wide, laid out in rows (measured in `host`, an SVG in
// the document); answers the group and its height.
function legendGroup(state, width, host) {
  const { graph } = state;
  const K = graph.attack.strengths, k = state.strengthIndex ?? K.length - 1;
  const g = el("g", { class: "legend" });
  host.append(g);
  const title = el("text", { x: 10, y: 16, "font-size": 13, "font-weight": 700 },
    `${graph.benign.name} → ${graph.target.name} · ${graph.attack.targeted ? "targeted" : "untargeted"} ` +
    `${graph.attack.name.toUpperCase()} · ε = ${formatNumber(K[k])} of ${formatNumber(K.at(-1))} · ` +
    `ASR ${formatPercent(graph.metrics.attack_success_rate[k])} · model ${graph.model.name}`);
  g.append(title);
  let x = 10, y = 28;
  const rowHeight = 18;
  for (const item of legendItems(state)) {
    const one = el("g", { class: "item" });
    const sw = el("g");
    item.swatch(sw);
    const text = el("text", { x: (item.width ?? 14) + 5, y: 7, "font-size": 11, "dominant-baseline": "central" }, item.text);
    one.append(sw, text);
    g.append(one);
    const w = (item.width ?? 14) + 5 + text.getComputedTextLength();
    if (x > 10 && x + w > width - 10) { x = 10; y += rowHeight; }
    one.setAttribute("transform", `translate(${x},${y})`);
    x += w + 16;
  }
  g.remove();
  return { g, height: y + rowHeight + 4 };
}

// The figure as SVG text.
export async function figureSvg(state) {
  const graphSvg = $("graph-svg"), top = $("graph-top");
  const width = +graphSvg.getAttribute("width"), height = +graphSvg.getAttribute("height");
  const root = el("svg", { xmlns: NS, class: "massif-figure", "font-family": FONT });
  // Measured in the page, out of sight, then taken out.
  Object.assign(root.style, { position: "absolute", left: "-10000px", top: "0" });
  document.body.append(root);
  try {
    const css = [...document.styleSheets].flatMap((s) => {
      try { return [...s.cssRules].map((r) => r.cssText); } catch { return []; }
    }).join("\n");
    root.append(el("style", {}, css + PRINT_CSS));
    const legend = legendGroup(state, width, root);
    const H = legend.height + height;
    for (const [k, v] of Object.entries({ width, height: H, viewBox: `0 0 ${width} ${H}` })) root.setAttribute(k, v);
    root.append(el("rect", { width, height: H, fill: "#fff" }), legend.g);
    const body = el("g", { transform: `translate(0,${legend.height})` });
    const graph = graphSvg.cloneNode(true);
    graph.removeAttribute("style");
    for (const edge of graph.querySelectorAll(".edge.cut")) edge.remove();  // as shown: hidden
    for (const image of graph.querySelectorAll("image")) {
      image.setAttribute("href", await dataUri(image.getAttribute("href")));
    }
    addMarks(graph);
    body.append(graph);
    if ($("graph-veil").classList.contains("on")) {  // the hover and pins' veil, as drawn
      const left = parseFloat($("graph-veil").style.left) || 0;
      body.append(el("rect", { x: left, width: width - left, height, fill: "#fff", "fill-opacity": 0.72 }));
      const over = top.cloneNode(true);
      over.removeAttribute("style");
      over.removeAttribute("aria-hidden");
      for (const ring of over.querySelectorAll(".focus-ring")) ring.remove();  // the keyboard's, not the view's
      // right of the layer names, as on the page
      const clip = el("clipPath", { id: "massif-graph-clip" });
      clip.append(el("rect", { x: left, width: width - left, height }));
      body.append(clip);
      over.setAttribute("clip-path", "url(#massif-graph-clip)");
      for (const image of over.querySelectorAll("image")) {
        image.setAttribute("href", await dataUri(image.getAttribute("href")));
      }
      addMarks(over);
      body.append(over);
    }
    root.append(body);
    root.removeAttribute("style");
    return `<?xml version="1.0" encoding="UTF-8"?>\n${new XMLSerializer().serializeToString(root)}`;
  } finally {
    root.remove();
  }
}

// The figure as a PNG Blob, `scale` times its size in CSS pixels.
export async function figurePng(svgText, scale = 2) {
  const url = URL.createObjectURL(new Blob([svgText], { type: "image/svg+xml" }));
  try {
    const image = new Image();
    image.src = url;
    await image.decode();
    const canvas = Object.assign(document.createElement("canvas"),
      { width: Math.round(image.width * scale), height: Math.round(image.height * scale) });
    const ctx = canvas.getContext("2d");
    ctx.scale(scale, scale);
    ctx.drawImage(image, 0, 0);
    return await new Promise((resolve, reject) =>
      canvas.toBlob((b) => (b ? resolve(b) : reject(new Error("the browser made no PNG"))), "image/png"));
  } finally {
    URL.revokeObjectURL(url);
  }
}

// ---- the menu -----------------------------------------------------------------------------

// `sources`: {deletion(), defense()} answering the latest EditResult and DefenseResult (or null).
export function createExport(store, sources) {
  const toggle = $("export-toggle"), menu = $("export-menu"), message = $("export-message");
  let curves = null;  // the saved deletion curves of the analysis shown, once asked for

  function say(text, problem = false) {
    message.textContent = text;
    message.hidden = !text;
    message.classList.toggle("problem", problem);
  }

  // What can be exported now: every button, enabled or not with the reason in its title.
  function refresh() {
    const { graph } = store.get();
    const empty = !graph;
    for (const b of menu.querySelectorAll("button[data-export]")) b.disabled = empty;
    if (empty) {
      say("Nothing to export: no analysis is shown. Open one (Saved analyses, or Show) first.", true);
      return;
    }
    say("");
    const have = { "deletion.csv": sources.deletion(), "defense.csv": sources.defense(), "curves.csv": curves };
    const why = { "deletion.csv": "delete neurons first (their numbers, once measured)",
                  "defense.csv": "run Suggest a defense first",
                  "curves.csv": "no deletion curves saved for this analysis (massif evaluate)" };
    for (const [name, value] of Object.entries(have)) {
      const b = menu.querySelector(`button[data-export="${name}"]`);
      b.disabled = !value;
      b.title = value ? `download ${name}` : why[name];
    }
  }

  function place() {
    const r = toggle.getBoundingClientRect();
    menu.style.top = `${r.bottom + 2}px`;
    menu.style.left = `${Math.max(4, Math.min(r.left, innerWidth - menu.offsetWidth - 4))}px`;
  }

  // The menu's contents are right before it shows (beforetoggle runs as it opens; toggle, where
  // it can be measured and placed, comes a task later).
  menu.addEventListener("beforetoggle", (event) => { if (event.newState === "open") refresh(); });
  menu.addEventListener("toggle", async (event) => {
    if (event.newState !== "open") return;
    place();
    const { key } = store.get();
    if (key && !api.offline && curves === null) {
      curves = (await api.getNumbers(key).catch(() => null))?.curves ?? null;
      if (store.get().key === key) refresh();
    }
  });

  function numbers() {
    return viewNumbers(store.get(), { deletion: sources.deletion(), defense: sources.defense(), curves });
  }

  menu.addEventListener("click", async (event) => {
    const what = event.target.closest("button[data-export]")?.dataset.export;
    const state = store.get();
    if (!what) return;
    if (!state.graph) return refresh();
    const base = `massif-${state.key}`;
    document.documentElement.dataset.export = "busy";
    try {
      if (what === "svg" || what === "png") {
        const svg = await figureSvg(state);
        if (what === "svg") download(new Blob([svg], { type: "image/svg+xml" }), `${base}.svg`);
        else download(await figurePng(svg), `${base}.png`);
      } else if (what === "json") {
        download(new Blob([JSON.stringify(numbers(), null, 2)], { type: "application/json" }), `${base}.json`);
      } else {
        const rows = tables(numbers())[what];
        if (!rows) { refresh(); return; }
        download(new Blob([toCsv(rows, COLUMNS[what])], { type: "text/csv" }), `${base}-${what}`);
      }
      say(`saved ${what.endsWith(".csv") ? `${base}-${what}` : `${base}.${what}`}`);
      document.documentElement.dataset.export = "done";
    } catch (e) {
      say(`export failed: ${e.message}`, true);
      document.documentElement.dataset.export = "error";
    }
  });

  store.subscribe((state, prev) => {
    if (state.key !== prev.key) curves = null;
    if (menu.matches(":popover-open")) refresh();
  });
  window.massif.exportNumbers = numbers;  // for the browser tests
  window.massif.exportSvg = () => figureSvg(store.get());
}
