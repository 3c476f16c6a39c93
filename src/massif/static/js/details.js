// The hover card (paper, Figure 3C/D and Figure 4): the neuron's id, group, vulnerability, its
// importance and activation curves over strength, its feature visualization and dataset
// examples, and its strongest incoming edges. Without a hovered or pinned node it shows the
// analysis as a whole.
import { lineChart } from "./chart.js";
import { COLORS, formatNumber, formatPercent, nodeColor } from "./store.js";

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export function createDetails(element, store) {
  let shown = undefined;

  function summary(graph) {
    const count = (g) => graph.nodes.filter((n) => n.group === g).length;
    const f = graph.metrics.faithfulness;
    element.innerHTML = `
      <h2>${esc(graph.benign.name)} → ${esc(graph.target.name)}</h2>
      <dl>
        <dt>attack</dt><dd>${esc(graph.attack.targeted ? "targeted " : "untargeted ")}${esc(graph.attack.name.toUpperCase())} (${esc(graph.attack.norm)}) up to ${graph.attack.strengths.at(-1)}</dd>
        <dt>images</dt><dd>${graph.benign.n_images}</dd>
        <dt>clean accuracy</dt><dd>${formatPercent(graph.metrics.clean_accuracy)}</dd>
        <dt>ASR at ε<sub>max</sub></dt><dd>${formatPercent(graph.metrics.attack_success_rate.at(-1))}</dd>
        <dt>divergence</dt><dd>${esc(graph.metrics.divergence_layer ?? "none")}</dd>
        <dt>nodes</dt><dd><span style="color:${COLORS.suppressed}">${count("suppressed")} suppressed</span>,
          <span style="color:${COLORS.shared}">${count("shared")} shared</span>,
          <span style="color:${COLORS.emphasized}">${count("emphasized")} emphasized</span></dd>
        <dt>faithfulness</dt><dd>ASR with the ${f.n_masked} emphasized masked ${formatPercent(f.masked_emphasized_asr)},
          with as many random ${formatPercent(f.masked_random_asr)}</dd>
      </dl>
      <p class="hint">Hover a neuron to see its curves and pictures; click to pin it.</p>`;
  }

  function neuron(graph, node, pictures) {
    const K = graph.attack.strengths;
    const eps = K[store.get().strengthIndex ?? K.length - 1];
    const incoming = graph.edges.filter((e) => e.target === node.id)
      .sort((a, b) => b.influence_attacked - a.influence_attacked);
    const picture = pictures?.pictures[node.id];
    const examples = pictures?.examples[node.id];
    element.innerHTML = `
      <h2 id="node-id">${esc(node.id)}</h2>
      <span class="badge" style="background:${nodeColor(node)}">${esc(node.group)}</span>
      <dl>
        <dt>vulnerability</dt><dd id="node-vulnerability">${formatNumber(node.vulnerability)}</dd>
        <dt>flips at ε</dt><dd>${formatNumber(node.flip_strength)}</dd>
      </dl>
      ${picture ? `<img class="picture" alt="feature visualization of ${esc(node.id)}" src="${picture}" width="120" height="120">`
        : `<div class="missing picture">no feature visualization yet<br>${esc(node.id)}</div>`}
      <h3>importance over strength</h3>
      <svg id="importance-chart"></svg>
      <div class="legend-row"><span class="swatch" style="background:${COLORS.suppressed}"></span>toward ${esc(graph.benign.name)}
        <span class="swatch" style="background:${COLORS.emphasized}"></span>toward ${esc(graph.target.name)}</div>
      <h3>activation (class mean of the channel max)</h3>
      <svg id="activation-chart"></svg>
      <h3>dataset examples</h3>
      ${examples ? `<img class="examples" alt="dataset examples of ${esc(node.id)}" src="${examples}">`
        : `<div class="missing examples">no dataset examples yet</div>`}
      <h3>top incoming edges</h3>
      <ul class="edges">${incoming.map((e) => `<li>${esc(e.source)}: ${formatNumber(e.influence_benign)} → ${formatNumber(e.influence_attacked)}</li>`).join("")
        || "<li>none (first layer)</li>"}</ul>`;
    const width = element.clientWidth - 24;
    lineChart(element.querySelector("#importance-chart"), {
      x: K, rule: eps, flip: node.flip_strength, width, series: [
        { values: node.importance_benign, color: COLORS.suppressed, className: "importance-benign" },
        { values: node.importance_target, color: COLORS.emphasized, className: "importance-target" },
      ] });
    lineChart(element.querySelector("#activation-chart"), {
      x: K, rule: eps, width, height: 90,
      series: [{ values: node.activation, color: "#444", className: "activation" }] });
  }

  function render() {
    const { graph, hover, pinned, pictures } = store.get();
    const id = hover ?? pinned;
    if (!graph) { element.innerHTML = ""; shown = undefined; return; }
    const node = id != null ? graph.nodes.find((n) => n.id === id) : null;
    if (node) neuron(graph, node, pictures); else summary(graph);
    shown = id;
  }

  store.subscribe((state, prev) => {
    const id = state.hover ?? state.pinned;
    if (state.graph !== prev.graph || state.pictures !== prev.pictures || id !== shown ||
        (id != null && state.strengthIndex !== prev.strengthIndex)) render();
  });
}
