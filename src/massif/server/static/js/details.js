// The hover card (paper, Figure 3C/D and Figure 4): the neuron's id, group, vulnerability, its
// importance and activation curves over strength, its feature visualization and dataset
// examples, and its strongest incoming edges. Without a hovered or pinned node it shows the
// analysis as a whole. The neuron card is built once and updated in place on each hover, which
// keeps hover feedback fast.
import { lineChart } from "./chart.js";
import { COLORS, formatNumber, formatPercent, nodeColor } from "./store.js";

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const CARD = `
  <h2 id="node-id"></h2>
  <span class="badge"></span>
  <dl>
    <dt>vulnerability</dt><dd id="node-vulnerability"></dd>
    <dt>flips at ε</dt><dd id="node-flip"></dd>
  </dl>
  <img class="picture" alt="feature visualization" width="120" height="120">
  <div class="missing picture">no feature visualization yet<br><span></span></div>
  <h3>importance over strength</h3>
  <svg id="importance-chart"></svg>
  <div class="legend-row"><span class="swatch" style="background:${COLORS.suppressed}"></span><span class="toward-b"></span>
    <span class="swatch" style="background:${COLORS.emphasized}"></span><span class="toward-t"></span></div>
  <h3>activation (class mean of the channel max)</h3>
  <svg id="activation-chart"></svg>
  <h3>dataset examples</h3>
  <img class="examples" alt="dataset examples">
  <div class="missing examples">no dataset examples yet</div>
  <h3>top incoming edges (benign → attacked influence)</h3>
  <ul class="edges"></ul>`;

export function createDetails(element, store) {
  let shown = undefined;
  let card = null;  // the neuron card's elements, built on first use
  const summaryBox = document.createElement("div");
  const cardBox = document.createElement("div");
  element.append(summaryBox, cardBox);

  function summary(graph) {
    const count = (g) => graph.nodes.filter((n) => n.group === g).length;
    const f = graph.metrics.faithfulness;
    const warnings = (graph.warnings ?? []).map((w) => `<li>${esc(w)}</li>`).join("");
    summaryBox.innerHTML = `
      <h2>${esc(graph.benign.name)} → ${esc(graph.target.name)}</h2>
      ${warnings ? `<ul class="warnings" role="alert">${warnings}</ul>` : ""}
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

  function build() {
    cardBox.innerHTML = CARD;
    const q = (s) => cardBox.querySelector(s);
    card = { id: q("#node-id"), badge: q(".badge"), vulnerability: q("#node-vulnerability"),
             flip: q("#node-flip"), picture: q("img.picture"), noPicture: q(".missing.picture"),
             noPictureId: q(".missing.picture span"), towardB: q(".toward-b"), towardT: q(".toward-t"),
             importance: q("#importance-chart"), activation: q("#activation-chart"),
             examples: q("img.examples"), noExamples: q(".missing.examples"), edges: q("ul.edges"),
             width: Math.max(160, element.clientWidth - 24) };
  }

  function setImage(img, missing, url) {
    img.hidden = !url;
    missing.hidden = !!url;
    if (url && img.getAttribute("src") !== url) img.src = url;
    if (!url) img.removeAttribute("src");
  }

  function neuron(graph, node, pictures) {
    if (!card) build();
    const K = graph.attack.strengths;
    const eps = K[store.get().strengthIndex ?? K.length - 1];
    card.id.textContent = node.id;
    card.badge.textContent = node.group;
    card.badge.style.background = nodeColor(node);
    card.vulnerability.textContent = formatNumber(node.vulnerability);
    card.flip.textContent = formatNumber(node.flip_strength);
    card.noPictureId.textContent = node.id;
    setImage(card.picture, card.noPicture, pictures?.pictures[node.id]);
    setImage(card.examples, card.noExamples, pictures?.examples[node.id]);
    card.towardB.textContent = `toward ${graph.benign.name}`;
    card.towardT.textContent = `toward ${graph.target.name}`;
    const incoming = graph.edges.filter((e) => e.target === node.id)
      .sort((a, b) => b.influence_attacked - a.influence_attacked);
    card.edges.innerHTML = incoming.map((e) => `<li>${esc(e.source)}: ${formatNumber(e.influence_benign)} → ${formatNumber(e.influence_attacked)}</li>`).join("")
      || "<li>none (first layer)</li>";
    lineChart(card.importance, { x: K, rule: eps, flip: node.flip_strength, width: card.width, series: [
      { values: node.importance_benign, color: COLORS.suppressed, className: "importance-benign" },
      { values: node.importance_target, color: COLORS.emphasized, className: "importance-target" },
    ] });
    lineChart(card.activation, { x: K, rule: eps, width: card.width, height: 90,
      series: [{ values: node.activation, color: "#444", className: "activation" }] });
  }

  function render() {
    const { graph, hover, pinned, pictures } = store.get();
    const id = hover ?? pinned;
    shown = id;
    const node = graph && id != null ? graph.nodes.find((n) => n.id === id) : null;
    summaryBox.hidden = !graph || !!node;
    cardBox.hidden = !node;
    if (node) neuron(graph, node, pictures);
  }

  store.subscribe((state, prev) => {
    const id = state.hover ?? state.pinned;
    if (state.graph !== prev.graph) { if (state.graph) summary(state.graph); return render(); }
    if (state.pictures !== prev.pictures || id !== shown ||
        (id != null && state.strengthIndex !== prev.strengthIndex)) render();
  });
}
