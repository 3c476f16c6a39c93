// Which neurons and edges to light up, as pure functions of graph.json's numbers (defined in
// docs/web.md): Bluff's pathways ("most activated", "most changed by the attack", "most
// excited", "most inhibited") at one strength, and the tracing of nodes' ancestors or
// descendants along the graph's edges.
export const PATHWAY_MODES = {
  activated: "most activated",
  changed: "most changed by the attack",
  excited: "most excited",
  inhibited: "most inhibited",
};
export const PER_LAYER = 3;  // nodes a pathway keeps in each layer

// A node's score in a mode at strength index k (activation[0] is the clean images').
export function nodeScore(node, mode, k) {
  const clean = node.activation[0], now = node.activation[k];
  if (mode === "activated") return now;
  if (mode === "changed") return Math.abs(now - clean);
  if (mode === "excited") return now - clean;
  if (mode === "inhibited") return clean - now;
  throw new Error(`unknown pathway mode ${mode}`);
}

// The pathway of a mode at strength index k: from the top layer down, the PER_LAYER
// best-scoring nodes among those feeding the nodes chosen in the layer above (the whole layer
// when none feeds them), keeping only positive scores except in "activated"; and the edges
// joining chosen nodes. Returns {nodes: Set of ids, edges: Set of "source>target"}.
export function pathway(graph, mode, k, perLayer = PER_LAYER) {
  const byLayer = new Map(graph.layers.map((l) => [l, []]));
  for (const n of graph.nodes) byLayer.get(n.layer)?.push(n);
  const sourcesOf = new Map();
  for (const e of graph.edges) {
    if (!sourcesOf.has(e.target)) sourcesOf.set(e.target, []);
    sourcesOf.get(e.target).push(e.source);
  }
  const keep = (n) => mode === "activated" || nodeScore(n, mode, k) > 0;
  const best = (nodes) => nodes.filter(keep)
    .sort((a, b) => nodeScore(b, mode, k) - nodeScore(a, mode, k) || a.id.localeCompare(b.id))
    .slice(0, perLayer);
  const chosen = new Set();
  let above = [];
  for (const layer of [...graph.layers].reverse()) {
    const nodes = byLayer.get(layer) ?? [];
    const feeding = new Set(above.flatMap((id) => sourcesOf.get(id) ?? []));
    let picked = best(nodes.filter((n) => feeding.has(n.id)));
    if (picked.length === 0) picked = best(nodes);
    for (const n of picked) chosen.add(n.id);
    above = picked.map((n) => n.id);
  }
  const edges = new Set(graph.edges.filter((e) => chosen.has(e.source) && chosen.has(e.target))
    .map(edgeId));
  return { nodes: chosen, edges };
}

export const edgeId = (e) => `${e.source}>${e.target}`;

// The nodes and edges reached from `ids`: "edges" one step both ways (incoming and outgoing),
// "ancestors" every step toward the input, "descendants" every step toward the output.
export function trace(graph, ids, direction) {
  const nodes = new Set(ids), edges = new Set();
  const up = direction === "descendants" || direction === "edges";
  const down = direction === "ancestors" || direction === "edges";
  const steps = direction === "edges" ? 1 : Infinity;
  for (const [on, from, to] of [[down, "target", "source"], [up, "source", "target"]]) {
    if (!on) continue;
    let frontier = new Set(ids);
    for (let step = 0; step < steps && frontier.size; step++) {
      const next = new Set();
      for (const e of graph.edges) {
        if (!frontier.has(e[from])) continue;
        edges.add(edgeId(e));
        if (!nodes.has(e[to])) { nodes.add(e[to]); next.add(e[to]); }
      }
      frontier = next;
    }
  }
  return { nodes, edges };
}
