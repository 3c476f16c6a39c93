// Which edges the graph draws (View, "edges per neuron"; docs/web.md, Edge views): all of them,
// or each neuron's strongest few. With k per neuron, an edge is drawn when it is among the k
// heaviest of its source's outgoing edges OR among the k heaviest of its target's incoming
// edges, weighed as the current edge view draws it (benign, attacked or |change|). "Among the k
// heaviest": fewer than k of those edges weigh strictly more, so edges tied at the k-th place
// are all drawn, and the rule does not depend on graph.json's order. An edge that weighs
// nothing in the view (influence ≤ 0) is in no top k. Pure functions of graph.json's numbers.
import { edgeId } from "./pathways.js";

// The choices of the View control and the URL's `top=` (docs/web.md gives the default's why).
export const EDGE_TOPS = ["all", "1", "2", "3", "5"];
export const DEFAULT_TOP = "2";

// An edge's weight in each edge view: what its width shows.
export const EDGE_WEIGHT = {
  benign: (e) => Math.max(0, e.influence_benign),
  attacked: (e) => Math.max(0, e.influence_attacked),
  change: (e) => Math.abs(e.influence_attacked - e.influence_benign),
};

// The ids ("source>target") of the edges drawn for `top` ("all" or a count) in `edgeMode`.
export function shownEdges(edges, edgeMode, top) {
  if (top === "all") return new Set(edges.map(edgeId));
  const k = Number(top), weight = EDGE_WEIGHT[edgeMode];
  const outgoing = new Map(), incoming = new Map();
  for (const e of edges) {
    const w = weight(e);
    if (!outgoing.has(e.source)) outgoing.set(e.source, []);
    if (!incoming.has(e.target)) incoming.set(e.target, []);
    outgoing.get(e.source).push(w);
    incoming.get(e.target).push(w);
  }
  const amongTop = (w, weights) => weights.filter((v) => v > w).length < k;
  return new Set(edges.filter((e) => {
    const w = weight(e);
    return w > 0 && (amongTop(w, outgoing.get(e.source)) || amongTop(w, incoming.get(e.target)));
  }).map(edgeId));
}
