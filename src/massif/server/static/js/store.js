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

// Colours, each with one meaning (docs/web.md, Colours):
// - a group's hue and lightness (the legend's swatch); within a group, vulnerability is how
//   strong the colour is: the most vulnerable nodes have the swatch's colour, less vulnerable
//   ones are paler (less chroma at the same hue and lightness; the old blend toward purple made
//   vulnerable emphasized nodes look red);
// - benign and attacked edges: the benign graph's and the attacked graph's colours;
// - the change view's edges: a diverging pair of their own (lavender lost, wine gained), in
//   both palettes, that no group uses.
// Two palettes, chosen under View (palette= in the URL): "default", and "cb", safe for readers
// with colour-blindness: Okabe and Ito's blue (darkened) and orange with a teal between them,
// apart under deuteranopia, protanopia and tritanopia and, by lightness, in greyscale.
export const PALETTES = {
  default: { suppressed: "#2c7bb6", shared: "#8856a7", emphasized: "#f1852b",
             benign: "#3d86bd", attacked: "#e8822a" },
  cb: { suppressed: "#00446f", shared: "#0f8a7d", emphasized: "#e69f00",
        benign: "#00446f", attacked: "#e69f00" },
};
export const PALETTE_NAMES = { default: "default", cb: "colour-blind safe" };
// The colours in use: usePalette changes these objects in place, so every module that reads
// them when it draws gets the chosen palette's.
export const COLORS = {};
export const EDGE_COLORS = {};
export const CHANGE_COLORS = { lost: "#a49ae8", none: "#d9d9d9", gained: "#6d2a3a" };
export const PALE = 0.6;  // the least vulnerable node keeps 1 − PALE of its group's chroma

export function usePalette(name) {
  const p = PALETTES[name] ?? PALETTES.default;
  Object.assign(COLORS, { suppressed: p.suppressed, shared: p.shared, emphasized: p.emphasized });
  Object.assign(EDGE_COLORS, { benign: p.benign, attacked: p.attacked });
  const root = globalThis.document?.documentElement;
  if (!root) return;
  for (const g of Object.keys(COLORS)) root.style.setProperty(`--${g}`, COLORS[g]);
  root.dataset.palette = PALETTES[name] ? name : "default";
}
usePalette("default");

// A group's colour at vulnerability v in [0, 1]: the swatch's at 1, paler below.
export function vulnerabilityColor(color, v) {
  if (v >= 1) return color;
  const c = d3.hcl(color);
  c.c *= 1 - PALE * (1 - v);
  return c.formatHex();
}
export function nodeColor(node) {
  if (node.group === "shared" || node.vulnerability == null) return COLORS[node.group];
  return vulnerabilityColor(COLORS[node.group], node.vulnerability);
}

// The change view's colour of attacked − benign, from −maxChange (lost) to +maxChange (gained).
export function changeColor(maxChange) {
  const m = maxChange || 1;
  const { lost, none, gained } = CHANGE_COLORS;
  return d3.scaleDiverging([-m, 0, m], d3.piecewise(d3.interpolateLab, [lost, none, gained]));
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
