// The whole view in the URL, so a link reproduces it (docs/web.md, "Shareable state"):
//   /graphs/{key}                  a saved analysis
//   /graphs/{key}/nodes/{id}       the same with that one neuron pinned
// and in the query, each left out at its default:
//   k=<strength index>  edges=benign|change  highlight=activated|changed|excited|inhibited
//   trace=ancestors|descendants  pins=<id>,<id>  deleted=<id>,<id>  mode=mean
//   image=<position of one of the class's images> (the images tab, that image shown)
// A standalone report (one file, one analysis) keeps its own path and has only the query.
export const DEFAULTS = { edgeMode: "attacked", highlight: "none", trace: "edges", maskMode: "zero" };
const CHOICES = {
  edgeMode: ["benign", "attacked", "change"],
  highlight: ["none", "activated", "changed", "excited", "inhibited"],
  trace: ["edges", "ancestors", "descendants"],
  maskMode: ["zero", "mean"],
};
const PARAM = { edgeMode: "edges", highlight: "highlight", trace: "trace", maskMode: "mode" };

const ids = (text) => (text ? text.split(",").map((s) => s.trim()).filter(Boolean) : []);

// The view a URL asks for, before it is checked against the graph: {key, pins, masked,
// strengthIndex, edgeMode, highlight, trace, maskMode, problems: [plain messages]}.
export function readView(location, reportKey = null) {
  const route = reportKey ? [null, reportKey, null]
    : location.pathname.match(/^\/graphs\/([a-z0-9-]+)(?:\/nodes\/([^/]+))?\/?$/);
  if (!route) return null;
  const q = new URLSearchParams(location.search);
  const view = { key: route[1], problems: [], strengthIndex: null, ...DEFAULTS };
  let pinned = [];
  if (route[2]) {
    try {
      pinned = [decodeURIComponent(route[2])];
    } catch {
      view.problems.push(`The address's neuron ${route[2].slice(0, 40)} is not a readable id.`);
    }
  }
  view.pins = [...new Set([...pinned, ...ids(q.get("pins"))])];
  view.masked = [...new Set(ids(q.get("deleted")))];
  for (const [field, name] of Object.entries(PARAM)) {
    const value = q.get(name);
    if (value == null) continue;
    if (CHOICES[field].includes(value)) view[field] = value;
    else view.problems.push(`${name}=${value.slice(0, 40)} is not one of ${CHOICES[field].join(", ")}.`);
  }
  view.image = null;
  if (q.has("image")) {
    const i = Number(q.get("image"));
    if (Number.isInteger(i) && i >= 0 && q.get("image").trim() !== "") view.image = i;
    else view.problems.push(`image=${q.get("image").slice(0, 40)} is not an image number (0, 1, 2, …).`);
  }
  if (q.has("k")) {
    const k = Number(q.get("k"));
    if (Number.isInteger(k) && k >= 0) view.strengthIndex = k;
    else view.problems.push(`k=${q.get("k").slice(0, 40)} is not a strength index (0, 1, 2, …).`);
  }
  return view;
}

// The URL of a view (state: the store's); `reportPath`: a report's own path, kept as it is.
export function viewUrl(state, reportPath = null) {
  const { key, pins, masked, strengthIndex, graph } = state;
  const path = reportPath ?? (pins.length === 1
    ? `/graphs/${key}/nodes/${encodeURIComponent(pins[0]).replaceAll("%3A", ":")}` : `/graphs/${key}`);
  const q = new URLSearchParams();
  const last = graph ? graph.attack.strengths.length - 1 : null;
  if (strengthIndex != null && strengthIndex !== last) q.set("k", String(strengthIndex));
  for (const [field, name] of Object.entries(PARAM)) {
    if (state[field] !== DEFAULTS[field]) q.set(name, state[field]);
  }
  if (pins.length > 1 || (reportPath && pins.length)) q.set("pins", pins.join(","));
  if (masked.length) q.set("deleted", masked.join(","));
  if (state.image != null) q.set("image", String(state.image));
  const query = q.toString().replaceAll("%2C", ",").replaceAll("%3A", ":");
  return query ? `${path}?${query}` : path;
}
