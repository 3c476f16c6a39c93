// The hover card (paper, Figure 3C/D and Figure 4): the neuron's id, group, vulnerability, its
// importance and activation curves over strength, its feature visualization and dataset
// examples (a click enlarges them), and its strongest incoming and outgoing edges (a click on
// one pins that neuron). Its activation change under attack is shown beside its importance,
// since groups come from importance, not activation. Without a hovered or pinned node it shows the
// analysis as a whole. The neuron card is built once and updated in place on each hover, which
// keeps hover feedback fast. Every number says its scale or unit, inline or in an ⓘ beside it
// (explain.js), and both charts have axis titles and a key for each line they draw.
import { lineChart } from "./chart.js";
import { importanceUnit, infoButton, setInfo, strengthScale } from "./explain.js";
import { GROUPS_MEANING } from "./legend.js";
import { openLightbox } from "./lightbox.js";
import { COLORS, esc, formatNumber, formatPercent, nodeColor } from "./store.js";

const CARD = `
  <h2 id="node-id"></h2>
  <span class="badge"></span>
  <dl>
    <dt>vulnerability ${infoButton("vulnerability", "what vulnerability means")}</dt><dd id="node-vulnerability"></dd>
    <dt>flips at <span class="symbol">ε</span> ${infoButton("flip", "what the flip strength means")}</dt><dd id="node-flip"></dd>
    <dt>activation ${infoButton("activation", "what the activation is")}</dt><dd id="node-activation"></dd>
    <dt>importance ${infoButton("importance", "what the importance is")}</dt><dd id="node-importance"></dd>
  </dl>
  <img class="picture zoomable" alt="feature visualization" title="click to enlarge" width="120" height="120">
  <div class="missing picture">no feature visualization yet<br><span></span></div>
  <h3>importance over strength</h3>
  <svg id="importance-chart"></svg>
  <h3>activation (class mean of the channel max)</h3>
  <svg id="activation-chart"></svg>
  <h3>dataset examples</h3>
  <img class="examples zoomable" alt="dataset examples" title="click to enlarge">
  <div class="missing examples">no dataset examples yet</div>
  <h3>incoming edges (benign → attacked influence) ${infoButton("edges-in", "what an edge's influence is")}</h3>
  <ul class="edges incoming"></ul>
  <h3>outgoing edges (benign → attacked influence) ${infoButton("edges-out", "what an edge's influence is")}</h3>
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
      <span class="muted">(target margin z<sub>t</sub> − z<sub>b</sub> in logits on the attacked images
      ${m(f.margin_unmasked)}: ${m(f.margin_emphasized)} with the emphasized masked,
      ${m(f.margin_random)} with random ones)</span>`;
  }

  function summary(graph) {
    const count = (g) => graph.nodes.filter((n) => n.group === g).length;
    const scale = strengthScale(graph, store.get().info);
    const correct = Math.round(graph.metrics.clean_accuracy * graph.benign.n_images);
    const warnings = (graph.warnings ?? []).map((w) => `<li>${esc(w)}</li>`).join("");
    summaryBox.innerHTML = `
      <h2>${esc(graph.benign.name)} → ${esc(graph.target.name)}</h2>
      ${warnings ? `<ul class="warnings" role="alert">${warnings}</ul>` : ""}
      <dl>
        <dt>attack</dt><dd class="attack">${esc(graph.attack.targeted ? "targeted " : "untargeted ")}${esc(graph.attack.name.toUpperCase())} up to ${scale.symbol} = ${graph.attack.strengths.at(-1)}
          <span class="muted">(${esc(scale.unit)}: ${esc(scale.text)})</span></dd>
        <dt>images</dt><dd class="images">${graph.benign.n_images} <span class="muted">${esc(graph.benign.name)} images, attacked at each of ${graph.attack.strengths.length - 1} strengths</span></dd>
        <dt>clean accuracy</dt><dd class="clean-accuracy">${formatPercent(graph.metrics.clean_accuracy)} <span class="muted">of them classified ${esc(graph.benign.name)}</span></dd>
        <dt>ASR at ${scale.symbol}<sub>max</sub></dt><dd class="asr">${formatPercent(graph.metrics.attack_success_rate.at(-1))} <span class="muted">of the ${correct} classified ${esc(graph.benign.name)} when clean end as ${esc(graph.attack.targeted ? graph.target.name : `another class`)} at ${scale.symbol} = ${graph.attack.strengths.at(-1)}</span></dd>
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
             noPictureId: q(".missing.picture span"), symbol: q("dt .symbol"),
             importance: q("#importance-chart"), activation: q("#activation-chart"),
             examples: q("img.examples"), noExamples: q(".missing.examples"),
             incoming: q("ul.edges.incoming"), outgoing: q("ul.edges.outgoing"), box: cardBox,
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

  // What the card's numbers are, for the ⓘ beside each (docs/method.md, Definitions).
  function explainCard(graph, node, { scale, unit, eps, toward, last }) {
    const sym = scale.symbol, max = formatNumber(graph.attack.strengths.at(-1));
    const strengths = `${sym} = ${graph.attack.strengths.slice(1).map(formatNumber).join(", ")}`;
    setInfo(card.box, "vulnerability", node.vulnerability == null
      ? "Shared neurons have no vulnerability: they are in both graphs, so they do not flip."
      : `Vulnerability = 1 − (k − 1)/${last}, from 1/${last} to 1, no unit: k is the first of the ` +
        `analysis's ${last} strengths (${strengths}) at which the neuron has made half its whole ` +
        `move in importance. 1: the weakest strength already moves it; 1/${last}: only the ` +
        `strongest does.`);
    setInfo(card.box, "flip", node.flip_strength == null
      ? "Shared neurons do not flip: they are in both graphs."
      : `Flip strength: the weakest strength at which the neuron has made half its whole move in ` +
        `importance (an emphasized neuron half its gain toward ${graph.target.name}, a ` +
        `suppressed one half its loss toward ${graph.benign.name}). ${sym} (${scale.unit}): ` +
        `${scale.text}; the analysis measures ${strengths}, up to ${max}. The neuron fades on ` +
        `the graph while the slider is below it.`);
    setInfo(card.box, "activation", `The class mean, over the ${graph.benign.n_images} ` +
      `${graph.benign.name} images, of the channel's largest value over positions: clean → ` +
      `attacked at the slider's ${sym} = ${formatNumber(eps)}, and the change in percent of the ` +
      `clean value. In the layer's own units, which have no fixed scale: compare a neuron with ` +
      `itself, not with other layers.`);
    setInfo(card.box, "importance", `Importance toward ${toward} (the class its group is about): ` +
      `${unit.text}. Clean → at the slider's ${sym} = ${formatNumber(eps)}, and the change in ` +
      `percent. The groups come from importance, not from activation.`);
    const edges = `Influence of a neuron on one of the next layer: the first one's activation × ` +
      `the gradient of the second one's channel max, summed over positions. To first order, how ` +
      `much of the second neuron's largest value the first accounts for, in the second one's ` +
      `activation units (negative: it lowers it). Mean over the clean images → over the images ` +
      `attacked at ${sym}_max = ${max} (edges are measured there only).`;
    setInfo(card.box, "edges-in", edges);
    setInfo(card.box, "edges-out", edges);
  }

  function neuron(graph, node, pictures) {
    if (!card) build();
    const K = graph.attack.strengths, last = K.length - 1;
    const eps = K[store.get().strengthIndex ?? last];
    const scale = strengthScale(graph, store.get().info), sym = scale.symbol;
    const unit = importanceUnit(graph);
    card.id.textContent = node.id;
    card.badge.textContent = node.group;
    card.badge.style.background = nodeColor(node);
    card.symbol.textContent = sym;
    const flipAt = K.findIndex((e) => Math.abs(e - node.flip_strength) < 1e-9);
    card.vulnerability.innerHTML = node.vulnerability == null
      ? `– <span class="unit">shared: does not flip</span>`
      : `${formatNumber(node.vulnerability)} <span class="unit">of 1: flips at strength ` +
        `${flipAt} of ${last}${flipAt === 1 ? ", the weakest" : ""}</span>`;
    card.flip.innerHTML = node.flip_strength == null ? `– <span class="unit">shared</span>`
      : `${formatNumber(node.flip_strength)} <span class="unit">of ${sym}<sub>max</sub> ` +
        `${formatNumber(K.at(-1))} (${esc(scale.unit)})</span>`;
    const k = K.indexOf(eps);
    card.activationChange.innerHTML = `${change(node.activation, k)} at ${sym} = ${formatNumber(eps)} ` +
      `<span class="unit">(layer's units)</span>`;
    const toward = node.group === "suppressed" ? graph.benign.name : graph.target.name;
    const values = node.group === "suppressed" ? node.importance_benign : node.importance_target;
    card.importanceChange.innerHTML = `${change(values, k)} toward ${esc(toward)} ` +
      `<span class="unit">(${unit.inline})</span>`;
    explainCard(graph, node, { scale, unit, eps, toward, last });
    card.noPictureId.textContent = node.id;
    setImage(card.picture, card.noPicture, pictures?.pictures[node.id]);
    setImage(card.examples, card.noExamples, pictures?.examples[node.id]);
    const byId = new Map(graph.nodes.map((n) => [n.id, n]));
    const strongest = (a, b) => Math.max(b.influence_benign, b.influence_attacked) -
      Math.max(a.influence_benign, a.influence_attacked);
    const incoming = graph.edges.filter((e) => e.target === node.id).sort(strongest);
    const outgoing = graph.edges.filter((e) => e.source === node.id).sort(strongest);
    card.incoming.innerHTML = incoming.map((e) => edgeRow(e, e.source, byId)).join("") ||
      `<li>none${node.layer === graph.layers[0] ? " (first layer)" : ""}</li>`;
    card.outgoing.innerHTML = outgoing.map((e) => edgeRow(e, e.target, byId)).join("") ||
      `<li>none${node.layer === graph.layers.at(-1) ? " (last layer)" : ""}</li>`;
    const axes = { x: K, rule: eps, width: card.width, xTitle: `${sym} (${scale.unit})`,
                   ruleLabel: `slider's ${sym}` };
    lineChart(card.importance, { ...axes, height: 140, flip: node.flip_strength,
      flipLabel: "flip strength", yTitle: `importance (${unit.short})`, series: [
        { values: node.importance_benign, color: COLORS.suppressed, className: "importance-benign",
          label: `toward ${graph.benign.name}` },
        { values: node.importance_target, color: COLORS.emphasized, className: "importance-target",
          label: `toward ${graph.target.name}` },
      ] });
    const own = store.get().imageDetail?.activations[node.id];
    lineChart(card.activation, { ...axes, height: 112, yTitle: "activation", series: [
      { values: node.activation, color: "#444", className: "activation",
        label: `class mean, ${graph.benign.name}` },
      ...(own ? [{ values: own, color: "#e8862a", className: "image-activation",
                   label: `image #${store.get().imageDetail.position}` }] : []),
    ] });
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
    if (state.graph !== prev.graph || state.palette !== prev.palette) {
      if (state.graph) summary(state.graph);
      return render();
    }
    if (state.pictures !== prev.pictures || id !== shown ||
        (id != null && (state.strengthIndex !== prev.strengthIndex ||
                        state.imageDetail !== prev.imageDetail))) render();
  });
}
