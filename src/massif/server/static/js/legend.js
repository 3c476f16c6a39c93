// The legend strip above the graph: what the groups mean (attribution, not activation), how
// vulnerability pales a group's colour, the divergence mark, the faded unflipped nodes, the pins' ring, and
// how the edges are drawn in the chosen edge view (with the strength they were measured at) and
// how many of them are drawn (edges per neuron).
//
// Its height fits all it can show for the analysis at the window's width (fit), set when the
// analysis or the width changes: the notes at its end are in view without scrolling, and the
// slider or a view change never resizes the graph below (which would lay it out again).
import { shownEdges } from "./edgetop.js";
import { PATHWAY_MODES, pathway } from "./pathways.js";
import { COLORS, EDGE_COLORS, changeColor, formatNumber, vulnerabilityColor } from "./store.js";

export const GROUPS_MEANING = "Groups come from attribution (importance toward a class), not from " +
  "activation: suppressed neurons are among the most important toward the benign class on clean " +
  "images but not on attacked ones, emphasized ones among the most important toward the target " +
  "on attacked images only, shared ones in both. An emphasized neuron can still lose activation " +
  "under attack: each neuron's card shows its activation change beside its importance.";

export const DIVERGENCE_MEANING = "An attacked image has crossed at a layer when, from that layer " +
  "on, its channel maxima are closer in angle to the target class's mean than to the benign " +
  "class's. Beside each layer: the share of attacked images (correct when clean) crossed by it " +
  "at the slider's strength. The divergence layer is where half of the images that cross have " +
  "crossed.";

export function createLegend(element, store) {
  // A group's colour from its least to its most vulnerable node, toward the middle as laid out.
  const ramp = (c, left) => {
    const ends = [vulnerabilityColor(c, 0), c];
    return `linear-gradient(to right, ${(left ? ends : ends.reverse()).join(", ")})`;
  };

  function edges(state) {
    const { graph, edgeMode, strengthIndex, topEdges } = state;
    if (!graph) return "";
    const M = graph.edges.length, N = shownEdges(graph.edges, edgeMode, topEdges).size;
    const shown = `<span class="item edges-shown" title="View, edges per neuron: an edge is drawn when it is among the k heaviest, in this edge view, of its source's outgoing or its target's incoming edges; hover and pins show all of a neuron's edges">` +
      (topEdges === "all" ? `showing all ${M} edges` : `showing ${N} of ${M} edges (top ${topEdges} per neuron)`) + "</span>";
    const K = graph.attack.strengths, eps = formatNumber(K.at(-1));
    const at = strengthIndex != null && strengthIndex !== K.length - 1
      ? `<span class="edge-note" title="the edge pass runs once, on the images attacked at ε_max">(measured at ε<sub>max</sub> = ${eps}, not at the slider's ε)</span>` : "";
    if (edgeMode === "change") {
      const m = d3.max(graph.edges, (e) => Math.abs(e.influence_attacked - e.influence_benign)) || 1;
      const c = changeColor(m);
      const stops = d3.range(0, 1.01, 0.25).map((t) => c(-m + 2 * m * t)).join(",");
      return `<span class="item edges edges-change">edges: change in influence, attacked − benign
        <span class="bar" style="background:linear-gradient(to right,${stops})"></span>
        <span class="ends" title="a colour pair of its own: no group uses lavender or wine"><span>−${formatNumber(m)} lost (lavender)</span><span>+${formatNumber(m)} gained (wine)</span></span>
        width: |change| ${at}</span>${shown}`;
    }
    const color = EDGE_COLORS[edgeMode];
    const what = edgeMode === "benign" ? "influence on clean images" : `influence on images attacked at ε = ${eps}`;
    return `<span class="item edges edges-${edgeMode}"><svg width="34" height="10"><line x1="0" y1="5" x2="34" y2="5"
      stroke="${color}" stroke-width="4"/></svg>edges: ${what}, width ∝ √influence ${edgeMode === "attacked" ? at : ""}</span>${shown}`;
  }

  const pathwayText = (mode, eps, lit) => (lit
    ? `<span class="item pathway-note">black rings: the ${PATHWAY_MODES[mode]} pathway at ε = ${eps}</span>`
    : `<span class="item pathway-note empty">no ${PATHWAY_MODES[mode]} pathway at ε = ${eps}: no neuron scores above 0</span>`);

  // Which pathway is lit, or why none is (no node scores above 0, as at ε = 0).
  function pathwayNote(state) {
    const { graph, highlight, strengthIndex } = state;
    if (!graph || highlight === "none") return "";
    const K = graph.attack.strengths, k = strengthIndex ?? K.length - 1;
    return pathwayText(highlight, formatNumber(K[k]), pathway(graph, highlight, k).nodes.size > 0);
  }

  function content(state) {
    return `
      <span class="item"><span class="swatch" style="background:${COLORS.suppressed}"></span>suppressed: benign graph only</span>
      <span class="item"><span class="swatch" style="background:${COLORS.shared}"></span>shared: both</span>
      <span class="item"><span class="swatch" style="background:${COLORS.emphasized}"></span>emphasized: attacked graph only</span>
      <span class="item groups-meaning" tabindex="0" title="${GROUPS_MEANING}">what do the groups mean?</span>
      <span class="item"><span class="ramp" style="background:${ramp(COLORS.suppressed, true)}"></span><span class="ramp" style="background:${ramp(COLORS.emphasized, false)}"></span>more vulnerable: nearer the middle, full colour (less: paler)</span>
      <span class="item" title="${DIVERGENCE_MEANING}"><span class="swatch" style="background:#fff4d6;border:1px solid #e0c070"></span>◆ divergence layer, <span class="swatch crossed-swatch"></span>% crossed</span>
      <span class="item"><span class="swatch" style="background:#ccc;opacity:.3"></span>not flipped at this strength, with its edges</span>
      <span class="item"><span class="swatch" style="border:2px dashed #999"></span>no feature visualization yet</span>
      <span class="item"><span class="swatch pin-swatch"></span>pinned</span>
      ${edges(state)}${pathwayNote(state)}`;
  }

  function render() {
    element.innerHTML = content(store.get());
  }

  // The height of the longest legend this analysis can have at this width: each edge view with
  // the note that edges were measured at ε_max, and the longest pathway note. Measured in place
  // (all before the next paint); the graph's box then keeps its size until the next fit.
  function fit() {
    const state = store.get(), graph = state.graph;
    let height = 0;
    if (graph) {
      const K = graph.attack.strengths;
      const eps = K.map(formatNumber).reduce((a, b) => (b.length > a.length ? b : a));
      const note = Object.keys(PATHWAY_MODES).map((mode) => pathwayText(mode, eps, false))
        .reduce((a, b) => (b.length > a.length ? b : a));
      element.style.height = "auto";
      for (const edgeMode of ["benign", "attacked", "change"]) {
        element.innerHTML = content({ ...state, edgeMode, strengthIndex: 0, highlight: "none", topEdges: "5" }) + note;
        height = Math.max(height, element.offsetHeight);
      }
    }
    element.style.height = height ? `${height}px` : "";
    render();
  }

  let width = null;
  window.addEventListener("resize", () => {
    if (element.clientWidth !== width) { width = element.clientWidth; fit(); }
  });
  render();
  store.subscribe((state, prev) => {
    if (state.graph !== prev.graph) { width = element.clientWidth; fit(); }
    else if (state.palette !== prev.palette || state.edgeMode !== prev.edgeMode || state.strengthIndex !== prev.strengthIndex ||
             state.highlight !== prev.highlight || state.topEdges !== prev.topEdges) render();
  });
}
