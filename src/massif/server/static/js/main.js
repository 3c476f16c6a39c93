// The page: reads the URL, wires the panels to one store and loads the chosen analysis.
//
// Routes (each has a JSON twin on the server, see docs/web.md):
//   /                              the default pair, or ?benign=&target=&attack=&targeted=&max_strength=
//   /graphs/{key}                  a saved analysis
//   /graphs/{key}/nodes/{id}       the same with that neuron pinned
// and the rest of the view in the query (urlstate.js): strength, edge view, edges per neuron,
// pathway, tracing, pins and deleted neurons, the right panel's tab, the image and the neuron
// table's sort and filters, kept up to date as the view changes. Opening another analysis adds
// a history entry (Back returns to the analysis left, as it was); changes within one analysis
// replace the current entry.
import * as api from "./api.js";
import { attackChoice, checkRequest, createControls } from "./controls.js";
import { createDetails } from "./details.js";
import { createEdit } from "./edit.js";
import { createExport } from "./export.js";
import { createGraphView } from "./graph.js";
import { createHeader } from "./header.js";
import { createImages } from "./images.js";
import { createLegend } from "./legend.js";
import { createPanels } from "./panels.js";
import { closeLightbox, setupLightbox } from "./lightbox.js";
import { createStrength } from "./strength.js";
import { createStore, normalId, usePalette } from "./store.js";
import { createTable } from "./table.js";
import { DEFAULTS, TABLE_DEFAULTS, readView, viewUrl } from "./urlstate.js";

const $ = (id) => document.getElementById(id);
const store = createStore({ info: null, graph: null, key: null, pictures: null, hover: null,
                            pins: [], strengthIndex: null, ...DEFAULTS, editMode: false,
                            masked: [], greedy: [], panel: "neuron", image: null,
                            imageDetail: null, ...TABLE_DEFAULTS });
window.massif = { store };  // for the browser tests and the curious
// The palette first, so that every panel after it draws in the chosen colours.
store.subscribe((state, prev) => { if (state.palette !== prev.palette) usePalette(state.palette); });

// Show a saved analysis; `view` (from the URL) restores strength, pins, deletions and the rest.
// Another analysis than the one shown gets a history entry of its own, unless `fromHistory`
// (Back or Forward brought the page there: the entry exists).
async function loadGraph(key, view = null, fromHistory = false) {
  const [graph, pictures] = await Promise.all([api.getGraph(key), api.getPictures(key)]);
  const left = store.get().key;
  if (urlTimer !== null) { clearTimeout(urlTimer); writeUrl(); }  // the analysis left, as it was
  controls.show({ benign: graph.benign.index, target: graph.target.index,
                  attack: attackChoice(graph, store.get().info),
                  targeted: graph.attack.targeted, max_strength: graph.attack.strengths.at(-1) });
  controls.showJob(null);
  $("title").textContent = $("title").title =  // the title attribute: whole when the line is cut
    `${graph.benign.name} → ${graph.target.name} · ${graph.attack.targeted ? "targeted" : "untargeted"} ` +
    `${graph.attack.name.toUpperCase()} up to ε = ${graph.attack.strengths.at(-1)} · model ${graph.model.name}`;
  const ids = new Set(graph.nodes.map((n) => n.id));
  const K = graph.attack.strengths.length;
  const problems = [...(view?.problems ?? [])];
  const known = (list, what) => list.map(normalId).filter((id) => {
    if (ids.has(id)) return true;
    problems.push(`The ${what} neuron ${id.slice(0, 60)} is not in this analysis (its graph has ${graph.nodes.length} neurons).`);
    return false;
  });
  let strengthIndex = view?.strengthIndex ?? K - 1;
  if (strengthIndex >= K) {
    problems.push(`k=${strengthIndex} is past this analysis's ${K} strengths; showing ε_max.`);
    strengthIndex = K - 1;
  }
  const restored = view ? {
    pins: known(view.pins, "pinned"), masked: known(view.masked, "deleted"), edgeMode: view.edgeMode,
    palette: view.palette,
    highlight: view.highlight, trace: view.trace, maskMode: view.maskMode, topEdges: view.topEdges,
    tableSort: view.tableSort, tableGroups: view.tableGroups, tableFilter: view.tableFilter,
  } : { pins: [], masked: [] };
  const image = view?.image ?? null;
  if (image != null && image >= graph.benign.n_images) {
    problems.push(`image=${image} is past this analysis's ${graph.benign.n_images} images (0 to ${graph.benign.n_images - 1}).`);
  }
  restored.image = image != null && image < graph.benign.n_images && !api.offline ? image : null;
  restored.imageDetail = null;
  // A URL's tab, else the one its image implies; another analysis opened keeps the tab.
  restored.panel = view?.panel ?? (restored.image != null ? "images" : view ? "neuron" : store.get().panel);
  store.set({ graph, key, pictures, hover: null, strengthIndex, ...restored });
  controls.showError(problems.length ? problems.join(" ") : null);
  $("saved").value = key;
  $("download-report").hidden = api.offline;
  $("download-report").href = `/graphs/${key}/report.html`;
  $("compare-link").hidden = api.offline;
  $("compare-link").href = `/compare?a=${encodeURIComponent(key)}`;
  $("node-ids").replaceChildren(...graph.nodes.map((n) => new Option(n.id)));
  syncInputs();
  writeUrl(!fromHistory && left !== null && left !== key);
  document.documentElement.dataset.state = "ready";
  document.documentElement.dataset.key = key;
  window.massif.readyAt = performance.now();
}

// The view's inputs follow the store (a URL can set them).
function syncInputs() {
  const s = store.get();
  for (const radio of document.querySelectorAll("#edge-mode input")) radio.checked = radio.value === s.edgeMode;
  for (const radio of document.querySelectorAll("#mask-mode input")) radio.checked = radio.value === s.maskMode;
  $("highlight").value = s.highlight;
  $("trace").value = s.trace;
  $("palette").value = s.palette;
  $("edge-top").value = s.topEdges;
}

const controls = createControls(store, { loadGraph });
createLegend($("legend"), store);  // first: it sets its height, which the graph's box follows
const graphView = createGraphView($("graph-svg"), store);
createDetails($("card"), store);
createStrength(store);
const edit = createEdit(store);
createExport(store, { deletion: edit.deletions.latest, defense: edit.defense.latest ?? (() => null) });
createImages(store);
createPanels(store);  // after createImages: it decides when the card shows
createTable(store);  // after createPanels: it shows the card in its tab
createHeader(store, graphView);
setupLightbox();
// Escape cancels the jobs this page runs (the analysis computing, a defense search, deletion
// curves, a deletion's checks), unless
// something else takes it: the large view (it closes), a text box (the find box clears its note).
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape" || event.defaultPrevented || !$("lightbox").hidden) return;
  if (event.target.matches?.("input[type=search], input[type=text], textarea")) return;
  const a = controls.cancelJob();
  const b = edit.defense.cancel?.() ?? false;
  const c = edit.curves.cancel();
  const d = edit.deletions.cancel();
  if (a || b || c || d) event.preventDefault();
});
for (const radio of document.querySelectorAll("#edge-mode input")) {
  radio.addEventListener("change", () => store.set({ edgeMode: radio.value }));
}
$("highlight").addEventListener("change", () => store.set({ highlight: $("highlight").value }));
$("trace").addEventListener("change", () => store.set({ trace: $("trace").value }));
$("palette").addEventListener("change", () => store.set({ palette: $("palette").value }));
$("edge-top").addEventListener("change", () => store.set({ topEdges: $("edge-top").value }));

// The view into the URL (a report keeps its own file path and changes only the query): a new
// history entry when `push`, else the current one rewritten.
function writeUrl(push = false) {
  urlTimer = null;
  try {
    const url = viewUrl(store.get(), api.offline ? location.pathname : null);
    if (push) history.pushState(null, "", url);
    else history.replaceState(null, "", url);
  } catch {
    // a browser that refuses to change a file:// URL: the view still works, unshared
  }
}

let urlTimer = null;
store.subscribe((state, prev) => {
  if (state.key !== prev.key) closeLightbox();
  if (!state.key || prev.key !== state.key) return;
  const viewChanged = ["palette", "pins", "masked", "strengthIndex", "edgeMode", "highlight", "trace", "maskMode", "image",
                       "topEdges", "panel", "tableSort", "tableGroups", "tableFilter"]
    .some((f) => state[f] !== prev[f]);
  if (!viewChanged) return;
  clearTimeout(urlTimer);  // the slider moves many times a second: write the URL once it rests
  urlTimer = setTimeout(writeUrl, 120);
});

function showProblems(problems) {
  controls.showError(problems.join(" "));
  $("title").textContent = "nothing shown: see the message on the left";
  document.documentElement.dataset.state = "error";
}

async function start() {
  const info = await api.getInfo();
  store.set({ info });
  controls.setup(info);
  if (api.offline) document.documentElement.classList.add("report");
  const view = readView(location, api.reportKey);
  if (view) return loadGraph(view.key, view);
  if (location.pathname !== "/") return showProblems([`There is no page ${location.pathname.slice(0, 80)}.`]);
  const query = Object.fromEntries(new URLSearchParams(location.search));
  const { request, problems } = checkRequest({ ...info.default_request, ...query }, info);
  controls.show(request);
  if (problems.length) return showProblems(problems);  // start nothing
  if (!info.can_analyze) return;
  // The page was asked for this pair: compute it if it is missing.
  await controls.choose(true);
}

// Back and Forward: show the analysis and view of that entry.
window.addEventListener("popstate", () => {
  clearTimeout(urlTimer);  // a change still to write belonged to the entry left
  urlTimer = null;
  const view = readView(location, api.reportKey);
  if (!view) { location.reload(); return; }  // the entry of the page's first address, "/"
  loadGraph(view.key, view, true).catch((e) => showProblems([e.message]));
});

start().catch((e) => showProblems([e.message.endsWith(".") ? e.message : `${e.message}.`]));
