// The page's shared state in one small store: panels read it with get(), change it with
// set(patch) and react in subscribe(fn(state, previous)).
// A set() made while subscribers run waits until they have all seen the change before it, so
// every subscriber sees every change once, in order, with the right previous state.
export function createStore(initial) {
  let state = { ...initial };
  const subscribers = new Set();
  const queue = [];
  let dispatching = false;
  return {
    get: () => state,
    set(patch) {
      queue.push(patch);
      if (dispatching) return;
      dispatching = true;
      try {
        while (queue.length) {
          const previous = state;
          state = { ...state, ...queue.shift() };
          for (const fn of subscribers) fn(state, previous);
        }
      } finally {
        dispatching = false;
        queue.length = 0;
      }
    },
    subscribe(fn) { subscribers.add(fn); return () => subscribers.delete(fn); },
  };
}

// Colours of the three groups; within a group, more vulnerable nodes blend toward purple.
export const COLORS = { suppressed: "#2c7bb6", shared: "#8856a7", emphasized: "#f1852b" };
export const BLEND = 0.4;  // how far the most vulnerable node moves toward purple
export function nodeColor(node) {
  if (node.group === "shared" || node.vulnerability == null) return COLORS[node.group];
  return d3.interpolateLab(COLORS[node.group], COLORS.shared)(BLEND * node.vulnerability);
}

// Edge colours: benign influence in the benign graph's blue, attacked influence in the attacked
// graph's orange, and the change (attacked − benign) on a diverging scale between the two.
export const EDGE_COLORS = { benign: "#3d86bd", attacked: "#e8822a" };
export function changeColor(maxChange) {
  const m = maxChange || 1;
  return d3.scaleDiverging([-m, 0, m], d3.interpolateRgbBasis([COLORS.suppressed, "#c4c4c4", COLORS.emphasized]));
}

// Whether a suppressed or emphasized node has flipped at strength eps (shared: never).
export function flipped(node, eps) {
  return node.group !== "shared" && node.flip_strength != null && node.flip_strength <= eps + 1e-9;
}

// The divergence layer at strength index k: the median crossing layer of the attacked images
// that cross (docs/method.md, Divergence), from graph.json's `crossed[k]`; null when none does.
export function divergenceAt(graph, k) {
  const row = graph.metrics.divergence?.crossed[k];
  if (!row || !(row.at(-1) > 0)) return null;
  return graph.layers[row.findIndex((f) => f >= 0.5 * row.at(-1))];
}

// A neuron id as the server reads it: "mixed3a:027" is mixed3a:27 (the URL and the find box).
export const normalId = (id) => id.replace(/:0*(\d+)$/, (_, c) => `:${Number(c)}`);

// Text made safe to put into innerHTML (ids and names come from files and URLs).
export const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export function formatPercent(x) { return x == null ? "–" : `${Math.round(100 * x)}%`; }
export function formatNumber(x) {
  if (x == null) return "–";
  const a = Math.abs(x);
  return a !== 0 && (a < 0.01 || a >= 1e4) ? x.toExponential(2) : (+x.toFixed(3)).toString();
}
