// The neuron table (the right panel's "table" tab, issue 25 item 6): every node of the graph
// shown, one row each, with its id, layer, group, vulnerability, flip strength, activation
// change and importance change toward the target (both from the clean images to the slider's
// strength, as the card shows them). A click on a column's title sorts by it, another reverses
// it; the group boxes and the text box (a part of the id: "mixed4a", "4a:1", ":12") filter the
// rows. A row does what its node does on the graph: hovering it highlights the node
// (store.hover), a click pins it alone or unpins it (shift- or ctrl-click adds it to the pins),
// and with "click deletes neurons" ticked a click deletes it or restores it (store.masked).
// Pinned, hovered and deleted rows are marked. In this tab, hovering a node on the graph
// marks its row and shows the card over the table until the pointer leaves the node, as the
// images tab does. The sort, the boxes ticked and the filter's text are the store's (tableSort,
// tableGroups, tableFilter), so the URL keeps them (urlstate.js).
import { esc, formatNumber, nodeColor } from "./store.js";

const $ = (id) => document.getElementById(id);
const GROUPS = ["suppressed", "shared", "emphasized"];
export const TABLE_GROUPS = GROUPS;
const GROUP_MARK = { suppressed: "▼", shared: "●", emphasized: "▲" };  // as the export prints them

// Relative change of a value from the clean images (index 0) to strength index k, as the card
// gives it in brackets; null where the clean value is 0.
const relative = (values, k) => (values[0] !== 0 ? (values[k] - values[0]) / Math.abs(values[0]) : null);
const signed = (x, text) => (x > 0 ? `+${text}` : x < 0 ? `−${text}` : text);
// Short enough for the 290-px panel (the cell's title has the values in full): "+12%",
// "+2.5k%"; "0.48", "12", "8e-3".
const percent = (x) => {
  if (x == null) return "–";
  const p = Math.abs(Math.round(100 * x));
  return signed(x, p >= 1000 ? `${(p / 1000).toFixed(1)}k%` : `${p}%`);
};
const short = (x) => {
  const a = Math.abs(x);
  const text = a === 0 ? "0" : a < 0.01 ? a.toExponential(0) : a < 100 ? String(+a.toPrecision(2))
    : a < 1e4 ? String(Math.round(a)) : a.toExponential(1);
  return signed(x, text);
};

// The columns: what a cell shows, what it sorts by (null sorts last either way), and the title
// that says its scale and unit (graph: the analysis; eps: the slider's strength). The layer has
// no cell of its own (the id holds it: the panel is narrow): its button shares the id's title,
// which reads "layer:ch.".
const COLUMNS = [
  { key: "layer", label: "layer", shares: true, value: (r) => r.layerIndex,
    title: () => "sort by layer, from the input side (the graph's bottom row) up; within a " +
      "layer, the graph's order (group, then vulnerability)" },
  { key: "id", label: ":ch.", value: (r) => r.order, show: (r) => esc(r.node.id),
    title: () => "neuron id, layer:channel (the channel: the unit's index in its layer); " +
      "sort layer by layer from the input side, then by channel" },
  { key: "group", label: "g.", value: (r) => GROUPS.indexOf(r.node.group),
    show: (r) => `<span class="group-mark" style="color:${nodeColor(r.node)}">${GROUP_MARK[r.node.group]}</span>`,
    title: (g) => `group, from attribution (not activation): suppressed (▼) among the most important ` +
      `toward ${g.benign.name} on clean images only, emphasized (▲) toward ${g.target.name} under ` +
      "attack only, shared (●) in both; sorted suppressed, shared, emphasized" },
  { key: "vulnerability", label: "vuln.", numeric: true, value: (r) => r.node.vulnerability,
    show: (r) => formatNumber(r.node.vulnerability),
    title: () => "vulnerability, 0–1 (no unit): 1 − (k* − 1)/K, k* the first of the K strengths " +
      "at which the neuron has made half its whole move; 1: the weakest attack already moves it; " +
      "– for shared neurons" },
  { key: "flip", label: "flip ε", numeric: true, value: (r) => r.node.flip_strength,
    show: (r) => formatNumber(r.node.flip_strength),
    title: (g, info) => `flip strength: the attack strength ε_k* at which the neuron has made half ` +
      `its move, on the analysis's scale (${strengthMeaning(g, info)}; from 0 to ` +
      `${formatNumber(g.attack.strengths.at(-1))}); – for shared neurons` },
  { key: "activation", label: "act. Δ", numeric: true, value: (r) => r.activation,
    show: (r) => percent(r.activation),
    title: (g, _info, eps) => "activation change, in percent of the clean value: the class mean " +
      `of the channel's spatial maximum on clean images → at the slider's ε = ${eps} ` +
      "(hover a cell for both values; – where the clean value is 0)" },
  { key: "importance", label: "imp. Δ", numeric: true, value: (r) => r.importance,
    show: (r) => short(r.importance),
    title: (g, _info, eps) => `importance change toward ${g.target.name}: importance at the ` +
      `slider's ε = ${eps} minus on clean images (importance: the class mean of ` +
      `max(0, activation × gradient of the ${g.target.name} logit) summed over positions, in ` +
      "logit units; hover a cell for both values)" },
];
const CELLS = COLUMNS.filter((c) => !c.shares);
export const SORT_KEYS = COLUMNS.map((c) => c.key);

// "vulnerability:desc" → {key, descending}.
const readSort = (text) => {
  const [key, direction] = text.split(":");
  return { key, descending: direction === "desc" };
};

// What a strength of this analysis's attack is (the server's registry says it).
function strengthMeaning(graph, info) {
  const choice = (info?.attack_choices ?? []).find((a) =>
    a.name === graph.attack.name && a.norm === graph.attack.norm);
  return choice?.strength ?? `ε in the ${graph.attack.norm} norm, on [0, 1] images`;
}

export function createTable(store) {
  const panel = $("table-panel"), body = $("neuron-rows"), head = $("neuron-head");
  const filter = $("table-filter"), count = $("table-count"), card = $("card"), tabs = $("panel-tabs");
  let rowsById = new Map();
  let dirty = true;  // the rows need drawing when the tab next shows
  let fromRow = false;  // the hover was set by a row (so the card stays away from the table)

  $("tab-table").addEventListener("click", () => store.set({ panel: "table" }));

  // The group filters, with each group's colour and count (filled per analysis).
  const groupBoxes = $("table-groups");
  groupBoxes.innerHTML = GROUPS.map((g) =>
    `<label class="inline"><input type="checkbox" value="${g}" checked>` +
    `<span class="group-mark" style="color:var(--${g})">${GROUP_MARK[g]}</span> ${g} <span class="n"></span></label>`).join("");
  groupBoxes.addEventListener("change", () => store.set({
    tableGroups: [...groupBoxes.querySelectorAll("input:checked")].map((b) => b.value) }));
  filter.addEventListener("input", () => store.set({ tableFilter: filter.value }));
  // The boxes and the filter's text follow the store (a URL can set them).
  function syncInputs() {
    const { tableGroups, tableFilter } = store.get();
    for (const box of groupBoxes.querySelectorAll("input")) box.checked = tableGroups.includes(box.value);
    if (filter.value !== tableFilter) filter.value = tableFilter;
  }

  head.addEventListener("click", (event) => {
    const key = event.target.closest("button[data-key]")?.dataset.key;
    if (!key) return;
    const column = COLUMNS.find((c) => c.key === key);
    const sort = readSort(store.get().tableSort);
    const descending = sort.key === key ? !sort.descending : !!column.numeric;  // numbers: largest first
    store.set({ tableSort: `${key}:${descending ? "desc" : "asc"}` });
  });

  // A row acts as its node does on the graph (graph.js).
  body.addEventListener("click", (event) => {
    const id = event.target.closest("tr[data-id]")?.dataset.id;
    if (!id) return;
    const { editMode, masked, pins } = store.get();
    if (editMode) {
      return store.set({ masked: masked.includes(id) ? masked.filter((m) => m !== id) : [...masked, id] });
    }
    const has = pins.includes(id);
    if (event.shiftKey || event.ctrlKey || event.metaKey) {
      return store.set({ pins: has ? pins.filter((x) => x !== id) : [...pins, id] });
    }
    store.set({ pins: has && pins.length === 1 ? [] : [id] });
  });
  body.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" && event.key !== " ") return;
    const row = event.target.closest("tr[data-id]");
    if (!row) return;
    event.preventDefault();
    row.dispatchEvent(new MouseEvent("click", { bubbles: true, shiftKey: event.shiftKey, ctrlKey: event.ctrlKey }));
  });
  const hoverRow = (event) => {
    const id = event.target.closest("tr[data-id]")?.dataset.id ?? null;
    if (id === store.get().hover) return;
    fromRow = id != null;
    store.set({ hover: id });
  };
  body.addEventListener("mouseover", hoverRow);
  body.addEventListener("focusin", hoverRow);
  body.addEventListener("mouseleave", () => { if (fromRow) store.set({ hover: null }); });
  body.addEventListener("focusout", (event) => {
    if (fromRow && !body.contains(event.relatedTarget)) store.set({ hover: null });
  });

  // The rows' values at the slider's strength.
  function rows(graph, k) {
    const layerIndex = new Map(graph.layers.map((l, i) => [l, i]));
    const byOrder = [...graph.nodes].sort((a, b) =>
      (layerIndex.get(a.layer) - layerIndex.get(b.layer)) || (a.channel - b.channel));
    const order = new Map(byOrder.map((n, i) => [n.id, i]));
    return graph.nodes.map((node) => ({
      node, order: order.get(node.id), layerIndex: layerIndex.get(node.layer),
      activation: relative(node.activation, k),
      importance: node.importance_target[k] - node.importance_target[0],
    }));
  }

  function draw() {
    const { graph, strengthIndex, info, panel: shown, tableSort, tableGroups, tableFilter } = store.get();
    if (shown !== "table") { dirty = true; return; }
    const sort = readSort(tableSort);
    dirty = false;
    if (!graph) { body.innerHTML = ""; rowsById = new Map(); count.textContent = ""; return; }
    const K = graph.attack.strengths;
    const k = strengthIndex ?? K.length - 1;
    const eps = formatNumber(K[k]);
    let shared = "";  // the layer's button, put in the id's title
    head.innerHTML = COLUMNS.map((c) => {
      const on = sort.key === c.key;
      const arrow = on ? (sort.descending ? "▼" : "▲") : "";
      const button = `<button type="button" data-key="${c.key}"${on ? ' class="on"' : ""}` +
        ` title="${esc(c.title(graph, info, eps))}; click to sort, again to reverse">${c.label}${arrow}</button>`;
      if (c.shares) { shared = button; return ""; }
      const sorted = [c.key, ...(shared ? ["layer"] : [])].includes(sort.key);
      const aria = sorted ? ` aria-sort="${sort.descending ? "descending" : "ascending"}"` : "";
      const th = `<th scope="col" class="${c.numeric ? "num" : ""}"${aria}>${shared}${button}</th>`;
      shared = "";
      return th;
    }).join("");
    const groups = new Set(tableGroups);
    for (const box of groupBoxes.querySelectorAll("label")) {
      box.querySelector(".n").textContent = `(${graph.nodes.filter((n) => n.group === box.querySelector("input").value).length})`;
    }
    const text = tableFilter.trim().toLowerCase();
    const column = COLUMNS.find((c) => c.key === sort.key);
    const all = rows(graph, k);
    const kept = all.filter((r) => groups.has(r.node.group) && (!text || r.node.id.toLowerCase().includes(text)));
    const sign = sort.descending ? -1 : 1;
    kept.sort((a, b) => {  // stable: ties keep the graph's order; no value sorts last either way
      const x = column.value(a), y = column.value(b);
      if (x == null || y == null) return (x == null) - (y == null);
      return sign * (x - y);
    });
    const { pins, masked, hover } = store.get();
    const pinned = new Set(pins), deleted = new Set(masked);
    body.innerHTML = kept.map((r) => {
      const n = r.node;
      const cls = [n.group, pinned.has(n.id) ? "pinned" : "", deleted.has(n.id) ? "masked" : "",
                   hover === n.id ? "hover" : ""].filter(Boolean).join(" ");
      const cells = CELLS.map((c) => {
        const tip = c.key === "group" ? ` title="${n.group}"` : c.key === "activation" ? ` title="${esc(change(n.activation, k, eps))}"`
          : c.key === "importance" ? ` title="${esc(change(n.importance_target, k, eps))} toward ${esc(graph.target.name)}"` : "";
        return `<td class="${c.key}${c.numeric ? " num" : ""}"${tip}>${c.show(r)}</td>`;
      }).join("");
      return `<tr data-id="${esc(n.id)}" class="${cls}" tabindex="0"${pinned.has(n.id) ? ' aria-selected="true"' : ""}>${cells}</tr>`;
    }).join("");
    rowsById = new Map([...body.querySelectorAll("tr[data-id]")].map((tr) => [tr.dataset.id, tr]));
    count.textContent = `${kept.length} of ${all.length} neurons · changes from clean to ε = ${eps}`;
    panel.dataset.rows = String(kept.length);
    panel.dataset.sort = `${sort.key}:${sort.descending ? "desc" : "asc"}`;
  }

  // "a → b (+x%) at ε = e", as the card says it.
  function change(values, k, eps) {
    const a = values[0], b = values[k];
    const r = relative(values, k);
    return `${formatNumber(a)} → ${formatNumber(b)}${r == null ? "" : ` (${percent(r)})`} from clean to ε = ${eps}`;
  }

  // Marks on the rows (pins, deletions, hover) without drawing them again.
  function mark() {
    const { pins, masked, hover } = store.get();
    const pinned = new Set(pins), deleted = new Set(masked);
    for (const [id, tr] of rowsById) {
      tr.classList.toggle("pinned", pinned.has(id));
      tr.classList.toggle("masked", deleted.has(id));
      tr.classList.toggle("hover", hover === id);
      if (pinned.has(id)) tr.setAttribute("aria-selected", "true");
      else tr.removeAttribute("aria-selected");
    }
  }

  // In this tab the card shows over the table while a node of the graph is hovered (not a row:
  // the card would cover the table under the pointer).
  function showCard(state) {
    if (state.panel !== "table") return;
    const on = state.hover != null && !fromRow && !!state.graph;
    card.classList.toggle("overlay", on);
    if (on) card.style.top = `${tabs.offsetTop + tabs.offsetHeight}px`;
    card.hidden = !on;
  }

  function setPanel(state) {
    const on = state.panel === "table";
    $("tab-table").setAttribute("aria-selected", String(on));
    panel.hidden = !on;
    if (on) {
      $("tab-neuron").setAttribute("aria-selected", "false");
      $("tab-images").setAttribute("aria-selected", "false");
      $("images-panel").hidden = true;
      if (dirty) draw();
    }
    showCard(state);
  }

  store.subscribe((state, prev) => {
    if (state.hover !== prev.hover && state.hover == null) fromRow = false;
    if (state.panel !== prev.panel) setPanel(state);
    if (state.tableGroups !== prev.tableGroups || state.tableFilter !== prev.tableFilter) syncInputs();
    if (state.graph !== prev.graph || state.palette !== prev.palette || state.strengthIndex !== prev.strengthIndex || state.info !== prev.info ||
        state.tableSort !== prev.tableSort || state.tableGroups !== prev.tableGroups ||
        state.tableFilter !== prev.tableFilter) {
      dirty = true;
      if (state.panel === "table") draw();
    } else if (state.pins !== prev.pins || state.masked !== prev.masked || state.hover !== prev.hover) {
      mark();
    }
    if (state.hover !== prev.hover) showCard(state);
  });
  syncInputs();
  setPanel(store.get());
}
