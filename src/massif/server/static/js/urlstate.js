// The whole view in the URL, so a link reproduces it (docs/web.md, "Shareable state"):
//   /graphs/{key}                  a saved analysis
//   /graphs/{key}/nodes/{id}       the same with that one neuron pinned
// and in the query, each left out at its default:
//   k=<strength index>  edges=benign|change  highlight=activated|changed|excited|inhibited
//   trace=ancestors|descendants  pins=<id>,<id>  deleted=<id>,<id>  mode=mean
//   image=<position of one of the class's images> (the images tab, that image shown)
//   palette=cb (the colour-blind-safe colours, store.js)
//   top=all|1|3|5 (edges per neuron; default 2)  tab=neuron|images|table (left out when the
//   image says it: images with an image, else neuron)  sort=<column>:asc|desc  groups=<group>,…
//   filter=<text> (the neuron table's sort, group boxes and filter box)
// A standalone report (one file, one analysis) keeps its own path and has only the query.
import { DEFAULT_TOP, EDGE_TOPS } from "./edgetop.js";
import { SORT_KEYS, TABLE_GROUPS } from "./table.js";

export const DEFAULTS = { palette: "default", edgeMode: "attacked", highlight: "none", trace: "edges", maskMode: "zero",
                          topEdges: DEFAULT_TOP };
// The neuron table's state (table.js): its sort ("column:asc|desc"), the groups ticked (in
// TABLE_GROUPS' order) and the filter box's text as typed.
export const TABLE_DEFAULTS = { tableSort: "layer:asc", tableGroups: TABLE_GROUPS, tableFilter: "" };
const PANELS = ["neuron", "images", "table"];
const CHOICES = {
  palette: ["default", "cb"],
  edgeMode: ["benign", "attacked", "change"],
  highlight: ["none", "activated", "changed", "excited", "inhibited"],
  trace: ["edges", "ancestors", "descendants"],
  maskMode: ["zero", "mean"],
  topEdges: EDGE_TOPS,
};
const PARAM = { palette: "palette", edgeMode: "edges", highlight: "highlight", trace: "trace", maskMode: "mode",
                topEdges: "top" };

const ids = (text) => (text ? text.split(",").map((s) => s.trim()).filter(Boolean) : []);

// The view a URL asks for, before it is checked against the graph: {key, pins, masked,
// strengthIndex, edgeMode, highlight, trace, maskMode, topEdges, image, panel (null: as the image
// says), tableSort, tableGroups, tableFilter, problems: [plain messages]}.
export function readView(location, reportKey = null) {
  const route = reportKey ? [null, reportKey, null]
    : location.pathname.match(/^\/graphs\/([a-z0-9-]+)(?:\/nodes\/([^/]+))?\/?$/);
  if (!route) return null;
  const q = new URLSearchParams(location.search);
  const view = { key: route[1], problems: [], strengthIndex: null, ...DEFAULTS, ...TABLE_DEFAULTS };
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
  view.panel = null;
  if (q.has("tab")) {
    const tab = q.get("tab");
    if (PANELS.includes(tab)) view.panel = tab;
    else view.problems.push(`tab=${tab.slice(0, 40)} is not one of ${PANELS.join(", ")}.`);
  }
  if (q.has("sort")) {
    const [column, direction, ...rest] = q.get("sort").split(":");
    if (SORT_KEYS.includes(column) && ["asc", "desc"].includes(direction) && !rest.length) {
      view.tableSort = q.get("sort");
    } else {
      view.problems.push(`sort=${q.get("sort").slice(0, 40)} is not a column (${SORT_KEYS.join(", ")}) ` +
                         "then :asc or :desc.");
    }
  }
  if (q.has("groups")) {
    const asked = ids(q.get("groups"));
    const unknown = asked.filter((g) => !TABLE_GROUPS.includes(g));
    if (unknown.length) {
      view.problems.push(`groups=${q.get("groups").slice(0, 40)}: ${unknown[0].slice(0, 40)} is not one ` +
                         `of ${TABLE_GROUPS.join(", ")}.`);
    } else {
      view.tableGroups = TABLE_GROUPS.filter((g) => asked.includes(g));
    }
  }
  if (q.has("filter")) view.tableFilter = q.get("filter");
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
  const panel = state.panel ?? "neuron";
  if (panel !== (state.image != null ? "images" : "neuron")) q.set("tab", panel);
  if (state.tableSort && state.tableSort !== TABLE_DEFAULTS.tableSort) q.set("sort", state.tableSort);
  if (state.tableGroups && state.tableGroups.length !== TABLE_GROUPS.length) {
    q.set("groups", state.tableGroups.join(","));
  }
  if (state.tableFilter) q.set("filter", state.tableFilter);
  const query = q.toString().replaceAll("%2C", ",").replaceAll("%3A", ":");
  return query ? `${path}?${query}` : path;
}
