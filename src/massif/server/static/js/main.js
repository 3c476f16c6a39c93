// The page: reads the URL, wires the panels to one store and loads the chosen analysis.
//
// Routes (each has a JSON twin on the server, see docs/web.md):
//   /                              the default pair, or ?benign=&target=&attack=&targeted=&max_strength=
//   /graphs/{key}                  a saved analysis
//   /graphs/{key}/nodes/{id}       the same with that neuron pinned
import * as api from "./api.js";
import { createControls } from "./controls.js";
import { createDetails } from "./details.js";
import { createEdit } from "./edit.js";
import { createGraphView } from "./graph.js";
import { drawLegend } from "./legend.js";
import { createStrength } from "./strength.js";
import { createStore } from "./store.js";

const store = createStore({ info: null, graph: null, key: null, pictures: null, hover: null,
                            pinned: null, strengthIndex: null, edgeMode: "attacked",
                            editMode: false, masked: [], maskMode: "zero" });
window.massif = { store };  // for the browser tests and the curious

function attackChoice(graph) {
  return graph.attack.name === "pgd" ? `pgd-${graph.attack.norm}` : graph.attack.name;
}

async function loadGraph(key, pinned = null) {
  const [graph, pictures] = await Promise.all([api.getGraph(key), api.getPictures(key)]);
  controls.show({ benign: graph.benign.index, target: graph.target.index, attack: attackChoice(graph),
                  targeted: graph.attack.targeted, max_strength: graph.attack.strengths.at(-1) });
  document.getElementById("title").textContent =
    `${graph.benign.name} → ${graph.target.name} · ${graph.attack.targeted ? "targeted" : "untargeted"} ` +
    `${graph.attack.name.toUpperCase()} up to ε = ${graph.attack.strengths.at(-1)} · model ${graph.model.name}`;
  const path = pinned ? `/graphs/${key}/nodes/${pinned}` : `/graphs/${key}`;
  if (location.pathname !== path) history.replaceState(null, "", path);
  store.set({ graph, key, pictures, hover: null, pinned,
              strengthIndex: graph.attack.strengths.length - 1 });
  document.getElementById("saved").value = key;
  document.documentElement.dataset.state = "ready";
  document.documentElement.dataset.key = key;
  window.massif.readyAt = performance.now();
}

const controls = createControls(store, { loadGraph });
createGraphView(document.getElementById("graph-svg"), store);
createDetails(document.getElementById("details"), store);
createStrength(store);
createEdit(store);
drawLegend(document.getElementById("legend"));
for (const radio of document.querySelectorAll("#edge-mode input")) {
  radio.addEventListener("change", () => store.set({ edgeMode: radio.value }));
}
store.subscribe((state, prev) => {
  if (state.pinned !== prev.pinned && state.key && prev.key === state.key) {
    history.replaceState(null, "", state.pinned ? `/graphs/${state.key}/nodes/${state.pinned}` : `/graphs/${state.key}`);
  }
});

async function start() {
  const info = await api.getInfo();
  store.set({ info });
  controls.setup(info);
  const route = location.pathname.match(/^\/graphs\/([a-z0-9-]+)(?:\/nodes\/([^/]+))?\/?$/);
  if (route) return loadGraph(route[1], route[2] ? decodeURIComponent(route[2]) : null);
  const query = Object.fromEntries(new URLSearchParams(location.search));
  const request = { ...info.default_request, ...query };
  if (request.max_strength == null) request.max_strength = info.default_max_strength[request.attack];
  controls.show(request);
  if (!info.can_analyze) return;
  // The page was asked for this pair: compute it if it is missing.
  await controls.choose(true);
}

start().catch((e) => {
  controls.showError(e.message);
  document.documentElement.dataset.state = "error";
});
