// The page: reads the URL, wires the panels to one store and loads the chosen analysis.
//
// Routes (each has a JSON twin on the server, see docs/web.md):
//   /                              the default pair, or ?benign=&target=&attack=&targeted=&max_strength=
//   /graphs/{key}                  a saved analysis
//   /graphs/{key}/nodes/{id}       the same with that neuron pinned
// and the rest of the view in the query (urlstate.js): strength, edge view, pathway, tracing,
// pins and deleted neurons, kept up to date as the view changes.
import * as api from "./api.js";
import { checkRequest, createControls } from "./controls.js";
import { createDetails } from "./details.js";
import { createEdit } from "./edit.js";
import { createGraphView } from "./graph.js";
import { createImages } from "./images.js";
import { createLegend } from "./legend.js";
import { closeLightbox, setupLightbox } from "./lightbox.js";
import { createStrength } from "./strength.js";
import { createStore, esc } from "./store.js";
import { DEFAULTS, readView, viewUrl } from "./urlstate.js";

const $ = (id) => document.getElementById(id);
const store = createStore({ info: null, graph: null, key: null, pictures: null, hover: null,
                            pins: [], strengthIndex: null, ...DEFAULTS, editMode: false,
                            masked: [], greedy: [], panel: "neuron", image: null,
                            imageDetail: null });
window.massif = { store };  // for the browser tests and the curious

function attackChoice(graph) {
  return graph.attack.name === "pgd" ? `pgd-${graph.attack.norm}` : graph.attack.name;
}

// Show a saved analysis; `view` (from the URL) restores strength, pins, deletions and the rest.
async function loadGraph(key, view = null) {
  const [graph, pictures] = await Promise.all([api.getGraph(key), api.getPictures(key)]);
  controls.show({ benign: graph.benign.index, target: graph.target.index, attack: attackChoice(graph),
                  targeted: graph.attack.targeted, max_strength: graph.attack.strengths.at(-1) });
  controls.showJob(null);
  $("title").textContent =
    `${graph.benign.name} → ${graph.target.name} · ${graph.attack.targeted ? "targeted" : "untargeted"} ` +
    `${graph.attack.name.toUpperCase()} up to ε = ${graph.attack.strengths.at(-1)} · model ${graph.model.name}`;
  const ids = new Set(graph.nodes.map((n) => n.id));
  const K = graph.attack.strengths.length;
  const problems = [...(view?.problems ?? [])];
  // Ids as the server reads them: "mixed3a:027" is mixed3a:27.
  const normal = (id) => id.replace(/:0*(\d+)$/, (_, c) => `:${Number(c)}`);
  const known = (list, what) => list.map(normal).filter((id) => {
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
    highlight: view.highlight, trace: view.trace, maskMode: view.maskMode,
  } : { pins: [], masked: [] };
  const image = view?.image ?? null;
  if (image != null && image >= graph.benign.n_images) {
    problems.push(`image=${image} is past this analysis's ${graph.benign.n_images} images (0 to ${graph.benign.n_images - 1}).`);
  }
  restored.image = image != null && image < graph.benign.n_images && !api.offline ? image : null;
  restored.imageDetail = null;
  restored.panel = restored.image != null ? "images" : store.get().panel;
  store.set({ graph, key, pictures, hover: null, strengthIndex, ...restored });
  controls.showError(problems.length ? problems.join(" ") : null);
  $("saved").value = key;
  $("download-report").hidden = api.offline;
  $("download-report").href = `/graphs/${key}/report.html`;
  $("compare-link").hidden = api.offline;
  $("compare-link").href = `/compare?a=${encodeURIComponent(key)}`;
  $("node-ids").replaceChildren(...graph.nodes.map((n) => new Option(n.id)));
  syncInputs();
  writeUrl();
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
}

const controls = createControls(store, { loadGraph });
const graphView = createGraphView($("graph-svg"), store);
createDetails($("card"), store);
createStrength(store);
createEdit(store);
createImages(store);
createLegend($("legend"), store);
setupLightbox();
for (const radio of document.querySelectorAll("#edge-mode input")) {
  radio.addEventListener("change", () => store.set({ edgeMode: radio.value }));
}
$("highlight").addEventListener("change", () => store.set({ highlight: $("highlight").value }));
$("trace").addEventListener("change", () => store.set({ trace: $("trace").value }));
$("unpin").addEventListener("click", () => store.set({ pins: [] }));
$("pins").addEventListener("click", (event) => {
  const id = event.target.closest("[data-id]")?.dataset.id;
  if (id) store.set({ pins: store.get().pins.filter((p) => p !== id) });
});
$("find").addEventListener("keydown", (event) => {
  if (event.key !== "Enter") return;
  event.preventDefault();
  const { graph, pins } = store.get();
  const text = $("find").value.trim();
  if (!graph || !text) return;
  const node = graph.nodes.find((n) => n.id === text) ??
    graph.nodes.find((n) => n.id.toLowerCase() === text.toLowerCase());
  if (!node) {
    controls.showError(`No neuron ${text.slice(0, 60)} in this analysis: give layer:channel, e.g. ${graph.nodes[0]?.id}.`);
    return;
  }
  controls.showError(null);
  store.set({ pins: event.shiftKey ? [...new Set([...pins, node.id])] : [node.id] });
  graphView.reveal(node.id);
  $("find").value = "";
});

// The view into the URL (a report keeps its own file path and changes only the query).
function writeUrl() {
  try {
    history.replaceState(null, "", viewUrl(store.get(), api.offline ? location.pathname : null));
  } catch {
    // a browser that refuses to change a file:// URL: the view still works, unshared
  }
}

let urlTimer = null;
store.subscribe((state, prev) => {
  if (state.pins !== prev.pins) {
    $("pins-box").hidden = state.pins.length === 0;
    $("pins").innerHTML = state.pins.map((id) =>
      `<li><button type="button" data-id="${esc(id)}" title="unpin ${esc(id)}">${esc(id)} ×</button></li>`).join("");
  }
  if (state.key !== prev.key) closeLightbox();
  if (!state.key || prev.key !== state.key) return;
  const viewChanged = ["pins", "masked", "strengthIndex", "edgeMode", "highlight", "trace", "maskMode", "image"]
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

start().catch((e) => showProblems([e.message.endsWith(".") ? e.message : `${e.message}.`]));
