// The hover card (paper, Figure 3C/D and Figure 4): the neuron's id, group, vulnerability, its
// importance and activation curves over strength, its feature visualization and dataset
// examples (a click enlarges them), and its strongest incoming and outgoing edges (a click on
// one pins that neuron). Its activation change under attack is shown beside its importance,
// since groups come from importance, not activation. Without a hovered or pinned node it shows the
// analysis as a whole. The neuron card is built once and updated in place on each hover, which
// keeps hover feedback fast.
import { lineChart } from "./chart.js";
import { GROUPS_MEANING } from "./legend.js";
import { openLightbox } from "./lightbox.js";
import { COLORS, esc, formatNumber, formatPercent, nodeColor } from "./store.js";

const CARD = `
  <h2 id="node-id"></h2>
  <span class="badge"></span>
  <dl>
    <dt>vulnerability</dt><dd id="node-vulnerability"></dd>
    <dt>flips at ε</dt><dd id="node-flip"></dd>
    <dt>activation</dt><dd id="node-activation"></dd>
    <dt>importance</dt><dd id="node-importance"></dd>
  </dl>
  <img class="picture zoomable" alt="feature visualization" title="click to enlarge" width="120" height="120">
  <div class="missing picture">no feature visualization yet<br><span></span></div>
  <h3>importance over strength</h3>
  <svg id="importance-chart"></svg>
  <div class="legend-row"><span class="swatch" style="background:${COLORS.suppressed}"></span><span class="toward-b"></span>
    <span class="swatch" style="background:${COLORS.emphasized}"></span><span class="toward-t"></span></div>
  <h3>activation (class mean of the channel max)</h3>
  <svg id="activation-chart"></svg>
  <p class="hint image-note" hidden></p>
  <h3>dataset examples</h3>
  <img class="examples zoomable" alt="dataset examples" title="click to enlarge">
  <div class="missing examples">no dataset examples yet</div>
  <h3>incoming edges (benign → attacked influence)</h3>
  <ul class="edges incoming"></ul>
  <h3>outgoing edges</h3>
  <ul class="edges outgoing"></ul>`;

// One edge row: the other neuron (a button that pins it, in its group's colour) and the
// influence, clean → attacked.
function edgeRow(e, other, byId) {
  const n = byId.get(other);
  const color = n ? nodeColor(n) : "#999";
  return `<li><button type="button" class="neuron" data-id="${esc(other)}" style="border-color:${color}">` +
    `<span class="swatch" style="background:${color}"></span>${esc(other)}</button> ` +
    `${formatNumber(e.influence_benign)} → ${formatNumber(e.influence_attacked)}</li>`;
}

// "a → b (+x%)": a value on the clean images and at strength index k.
function change(values, k) {
  const a = values[0], b = values[k];
  const pct = a !== 0 ? ` (${b >= a ? "+" : "−"}${Math.abs(Math.round(100 * (b - a) / Math.abs(a)))}%)` : "";
  return `${formatNumber(a)} → ${formatNumber(b)}${pct}`;
}

export function createDetails(element, store) {
  let shown = undefined;
  let card = null;  // the neuron card's elements, built on first use
  const summaryBox = document.createElement("div");
  const cardBox = document.createElement("div");
  element.append(summaryBox, cardBox);

  function divergence(graph) {
    const div = graph.metrics.divergence;
    if (!div) return "none (not measured)";
    const last = div.crossed.at(-1).at(-1);
    return `${esc(graph.metrics.divergence_layer ?? "none")} at ε<sub>max</sub>
      <span class="muted">(${formatPercent(last)} of attacked images end closer to ${esc(graph.target.name)})</span>`;
  }

  // Every ASR after masking beside the benign class's clean accuracy after it (an ASR reads 0
  // when the mask takes the class with it), and the verdict, which rests on the target margin
  // (docs/method.md, Faithfulness). Graphs of format 2 have the ASRs only.
  function faithfulness(graph) {
    const f = graph.metrics.faithfulness;
    const asrs = `ASR with the ${f.n_masked} emphasized masked ${formatPercent(f.masked_emphasized_asr)}`;
    if (f.clean_accuracy_emphasized == null || f.margin_unmasked == null) {
      return `${asrs}, with as many random ${formatPercent(f.masked_random_asr)}
        <span class="muted">(ASR only: an older graph, analyse again for the clean accuracy)</span>`;
    }
    const verdict = f.faithful == null ? "not checked"
      : f.faithful ? "faithful" : "<strong>not faithful</strong>";
    const m = (v) => v.toFixed(2).replace("-", "−");
    return `${verdict}: ${asrs} at clean accuracy ${formatPercent(f.clean_accuracy_emphasized)},
      with as many random ${formatPercent(f.masked_random_asr)} at ${formatPercent(f.clean_accuracy_random)}
      <span class="muted">(target margin z<sub>t</sub> − z<sub>b</sub> on the attacked images
      ${m(f.margin_unmasked)}: ${m(f.margin_emphasized)} with the emphasized masked,
      ${m(f.margin_random)} with random ones)</span>`;
  }

  function summary(graph) {
    const count = (g) => graph.nodes.filter((n) => n.group === g).length;
    const warnings = (graph.warnings ?? []).map((w) => `<li>${esc(w)}</li>`).join("");
    summaryBox.innerHTML = `
      <h2>${esc(graph.benign.name)} → ${esc(graph.target.name)}</h2>
      ${warnings ? `<ul class="warnings" role="alert">${warnings}</ul>` : ""}
      <dl>
        <dt>attack</dt><dd>${esc(graph.attack.targeted ? "targeted " : "untargeted ")}${esc(graph.attack.name.toUpperCase())} (${esc(graph.attack.norm)}) up to ${graph.attack.strengths.at(-1)}</dd>
        <dt>images</dt><dd>${graph.benign.n_images}</dd>
        <dt>clean accuracy</dt><dd>${formatPercent(graph.metrics.clean_accuracy)}</dd>
        <dt>ASR at ε<sub>max</sub></dt><dd>${formatPercent(graph.metrics.attack_success_rate.at(-1))}</dd>
        <dt>divergence</dt><dd>${divergence(graph)}</dd>
        <dt>nodes</dt><dd><span style="color:${COLORS.suppressed}">${count("suppressed")} suppressed</span>,
          <span style="color:${COLORS.shared}">${count("shared")} shared</span>,
          <span style="color:${COLORS.emphasized}">${count("emphasized")} emphasized</span></dd>
        <dt>faithfulness</dt><dd class="faithfulness">${faithfulness(graph)}</dd>
      </dl>
      <p class="hint">Hover a neuron to see its curves and pictures; click to pin it
        (shift-click pins several).</p>
      <p class="hint groups-meaning">${esc(GROUPS_MEANING)}</p>`;
  }

  function build() {
    cardBox.innerHTML = CARD;
    const q = (s) => cardBox.querySelector(s);
    card = { id: q("#node-id"), badge: q(".badge"), vulnerability: q("#node-vulnerability"),
             flip: q("#node-flip"), activationChange: q("#node-activation"),
             importanceChange: q("#node-importance"), picture: q("img.picture"), noPicture: q(".missing.picture"),
             noPictureId: q(".missing.picture span"), towardB: q(".toward-b"), towardT: q(".toward-t"),
             importance: q("#importance-chart"), activation: q("#activation-chart"),
             examples: q("img.examples"), noExamples: q(".missing.examples"),
             incoming: q("ul.edges.incoming"), outgoing: q("ul.edges.outgoing"),
             imageNote: q(".image-note"),
             width: Math.max(160, element.clientWidth - 24) };
    cardBox.addEventListener("click", (event) => {
      const id = event.target.closest("button.neuron")?.dataset.id;
      if (id) return store.set({ pins: [id], hover: null });
      const img = event.target.closest("img.zoomable");
      const current = store.get().hover ?? store.get().pins.at(-1);
      if (img && current) openLightbox(store, current, img.classList.contains("picture") ? "picture" : "examples");
    });
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
    const k = K.indexOf(eps);
    card.activationChange.textContent = `${change(node.activation, k)} at ε = ${formatNumber(eps)}`;
    const toward = node.group === "suppressed" ? node.importance_benign : node.importance_target;
    card.importanceChange.textContent = `${change(toward, k)} toward ${node.group === "suppressed" ? graph.benign.name : graph.target.name}`;
    card.noPictureId.textContent = node.id;
    setImage(card.picture, card.noPicture, pictures?.pictures[node.id]);
    setImage(card.examples, card.noExamples, pictures?.examples[node.id]);
    card.towardB.textContent = `toward ${graph.benign.name}`;
    card.towardT.textContent = `toward ${graph.target.name}`;
    const byId = new Map(graph.nodes.map((n) => [n.id, n]));
    const strongest = (a, b) => Math.max(b.influence_benign, b.influence_attacked) -
      Math.max(a.influence_benign, a.influence_attacked);
    const incoming = graph.edges.filter((e) => e.target === node.id).sort(strongest);
    const outgoing = graph.edges.filter((e) => e.source === node.id).sort(strongest);
    card.incoming.innerHTML = incoming.map((e) => edgeRow(e, e.source, byId)).join("") ||
      `<li>none${node.layer === graph.layers[0] ? " (first layer)" : ""}</li>`;
    card.outgoing.innerHTML = outgoing.map((e) => edgeRow(e, e.target, byId)).join("") ||
      `<li>none${node.layer === graph.layers.at(-1) ? " (last layer)" : ""}</li>`;
    lineChart(card.importance, { x: K, rule: eps, flip: node.flip_strength, width: card.width, series: [
      { values: node.importance_benign, color: COLORS.suppressed, className: "importance-benign" },
      { values: node.importance_target, color: COLORS.emphasized, className: "importance-target" },
    ] });
    const own = store.get().imageDetail?.activations[node.id];
    lineChart(card.activation, { x: K, rule: eps, width: card.width, height: 90, series: [
      { values: node.activation, color: "#444", className: "activation" },
      ...(own ? [{ values: own, color: "#e8862a", className: "image-activation" }] : []),
    ] });
    card.imageNote.hidden = !own;
    if (own) card.imageNote.textContent = `orange: image #${store.get().imageDetail.position}`;
  }

  function render() {
    const { graph, hover, pins, pictures } = store.get();
    const id = hover ?? pins.at(-1) ?? null;
    shown = id;
    const node = graph && id != null ? graph.nodes.find((n) => n.id === id) : null;
    summaryBox.hidden = !graph || !!node;
    cardBox.hidden = !node;
    if (node) neuron(graph, node, pictures);
  }

  store.subscribe((state, prev) => {
    const id = state.hover ?? state.pins.at(-1) ?? null;
    if (state.graph !== prev.graph) { if (state.graph) summary(state.graph); return render(); }
    if (state.pictures !== prev.pictures || id !== shown ||
        (id != null && (state.strengthIndex !== prev.strengthIndex ||
                        state.imageDetail !== prev.imageDetail))) render();
  });
}
