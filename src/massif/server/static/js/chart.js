// A small line chart over the attack strengths (the hover card's curves, the left panel's ASR
// chart, the deletion's ASR curves), and the key every chart of the page draws (drawKey).
//
// The chart is built once per SVG element and then only updated (paths, dots, axis ticks, the
// key's few entries), so redrawing it on every hover costs well under a millisecond of layout.
//
// The key sits in the chart's SVG, above the plot: one entry per series and per marker line,
// each a sample drawn with the very style of what it names. A drawn element and its sample share
// `data-key` (which entry) and `data-shape` (line, band, dot, ring, rule), so a test can check
// that they look alike; the styles are set as attributes from one object, never by CSS.
const KEY_FONT = 9, KEY_ROW = 11, SAMPLE = 16, GAP = 9;
// The marker lines: the slider's strength (dotted) and the neuron's flip strength (red).
export const RULE_STYLE = { stroke: "#000", "stroke-width": 1, "stroke-dasharray": "2 2" };
export const FLIP_STYLE = { stroke: "#b00", "stroke-width": 1.2 };

let context = null;
function textWidth(text, weight = 400) {
  context ??= document.createElement("canvas").getContext("2d");
  context.font = `${weight} ${KEY_FONT}px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif`;
  return context.measureText(text).width;
}

// Where each key item goes in `width` px, in rows: [{x, row}] for the title (if any) and then
// each entry, and the number of rows.
function keyLayout(entries, width, title) {
  const widths = [...(title ? [textWidth(title, 600)] : []),
                  ...entries.map((e) => SAMPLE + 3 + textWidth(e.label))];
  let x = 0, row = 0;
  const at = widths.map((w) => {
    if (x > 0 && x + w > width) { row++; x = 0; }
    const place = { x, row };
    x += w + GAP;
    return place;
  });
  return { at, rows: widths.length ? row + 1 : 0 };
}

// The height the key of `entries` (and `title`) takes in `width` px.
export function keyHeight(entries, width, title = null) {
  const rows = keyLayout(entries, width, title).rows;
  return rows ? rows * KEY_ROW + 3 : 0;
}

// Set attributes from a style object (the same object styles a series and its key sample).
export function styled(selection, style) {
  for (const [name, value] of Object.entries(style)) selection.attr(name, value);
  return selection;
}

// Draw the key in `svg` (a d3 selection), from (left, top), `width` px wide: `title` first (the
// chart's title, in the same flow), then each entry {key, label, shapes: [{shape, style}]},
// where shape is "line" (a series), "band" (a filled area), "dot", "ring" (a point's outline)
// or "rule" (a vertical marker line). Answers its height.
export function drawKey(svg, entries, { left = 2, top = 2, width, title = null }) {
  const { at, rows } = keyLayout(entries, width, title);
  const height = rows ? rows * KEY_ROW + 3 : 0;
  const g = svg.selectAll("g.key").data([0]).join("g").attr("class", "key")
    .attr("font-size", KEY_FONT);
  const drawn = JSON.stringify([entries, left, top, width, title]);  // a hover redraws the same
  if (g.node().dataset.drawn === drawn) return height;
  g.node().dataset.drawn = drawn;
  g.selectAll("*").remove();
  const y = (row) => top + row * KEY_ROW + KEY_ROW / 2;
  let i = 0;
  if (title) {
    const p = at[i++];
    g.append("text").attr("class", "chart-title").attr("x", left + p.x).attr("y", y(p.row))
      .attr("dominant-baseline", "central").text(title);
  }
  for (const e of entries) {
    const p = at[i++], x0 = left + p.x, yy = y(p.row);
    const item = g.append("g").attr("class", "entry").attr("data-key", e.key);
    for (const { shape, style } of e.shapes) {
      let s;
      if (shape === "line") s = item.append("path").attr("d", `M${x0},${yy}h${SAMPLE}`).attr("fill", "none");
      else if (shape === "band") s = item.append("rect").attr("x", x0).attr("y", yy - 4).attr("width", SAMPLE).attr("height", 8);
      else if (shape === "rule") s = item.append("line").attr("x1", x0 + SAMPLE / 2).attr("x2", x0 + SAMPLE / 2).attr("y1", yy - 5).attr("y2", yy + 5);
      else s = item.append("circle").attr("cx", x0 + SAMPLE / 2).attr("cy", yy);
      styled(s.attr("class", "sample").attr("data-shape", shape), style);
    }
    item.append("text").attr("x", x0 + SAMPLE + 3).attr("y", yy).attr("dominant-baseline", "central")
      .text(e.label);
  }
  return height;
}

// A series' line style: its colour, width (default 1.8), opacity and dashes.
export const lineStyle = (s) => ({
  stroke: s.color, "stroke-width": s.width ?? 1.8, "stroke-opacity": s.opacity ?? 1,
  "stroke-dasharray": s.dash ?? "none",
});

// `series`: [{values, color, className, label, width, opacity, dash}], one value per strength
// in `x`; a series with a label gets a key entry. `rule` / `flip`: where to draw the slider's
// strength (dotted) and the flip strength (red), with `ruleLabel` / `flipLabel` for the key.
// `title`: the chart's title, first in the key's flow. `yDomain`: fixed y range (else from the
// values and 0). Axes: ticks, and `xTitle` / `yTitle` when given.
export function lineChart(svgElement, { x, series, rule = null, flip = null, width = 240,
                                        height = 110, axes = true, yFormat = null,
                                        xTitle = null, yTitle = null, yDomain = null,
                                        ruleLabel = null, flipLabel = null, title = null,
                                        xTicks = 5, yTicks = 4 }) {
  const svg = d3.select(svgElement).attr("width", width).attr("height", height).classed("chart", true);
  const entries = series.filter((s) => s.label).map((s) => ({
    key: s.className, label: s.label, shapes: [{ shape: "line", style: lineStyle(s) }] }));
  if (flip != null && flipLabel) entries.push({ key: "flip", label: flipLabel, shapes: [{ shape: "rule", style: FLIP_STYLE }] });
  if (rule != null && ruleLabel) entries.push({ key: "rule", label: ruleLabel, shapes: [{ shape: "rule", style: RULE_STYLE }] });
  const key = keyHeight(entries, width - 4, title);
  const m = axes ? { top: 6 + key, right: 8, bottom: xTitle ? 28 : 18, left: yTitle ? 44 : 38 }
    : { top: 3 + key, right: 3, bottom: 3, left: 3 };
  const built = `${width}x${height}:${xTitle}:${yTitle}:${key}`;
  if (svgElement.dataset.built !== built) {
    svg.selectAll("*").remove();
    svg.append("g").attr("class", "axis x").attr("transform", `translate(0,${height - m.bottom})`);
    svg.append("g").attr("class", "axis y").attr("transform", `translate(${m.left},0)`);
    styled(svg.append("line").attr("class", "flip").attr("data-key", "flip").attr("data-shape", "rule")
      .attr("y1", m.top).attr("y2", height - m.bottom), FLIP_STYLE).append("title");
    styled(svg.append("line").attr("class", "rule").attr("data-key", "rule").attr("data-shape", "rule")
      .attr("y1", m.top).attr("y2", height - m.bottom), RULE_STYLE);
    svg.append("g").attr("class", "series");
    if (xTitle) svg.append("text").attr("class", "axis-title x").attr("text-anchor", "end")
      .attr("x", width - m.right).attr("y", height - 2).text(xTitle);
    if (yTitle) svg.append("text").attr("class", "axis-title y").attr("text-anchor", "middle")
      .attr("transform", `translate(9,${(m.top + height - m.bottom) / 2}) rotate(-90)`).text(yTitle);
    svgElement.dataset.built = built;
  }
  if (entries.length || title) drawKey(svg, entries, { width: width - 4, title });
  else svg.select("g.key").remove();
  const xs = d3.scaleLinear().domain(d3.extent(x)).range([m.left, width - m.right]);
  const all = series.flatMap((s) => s.values);
  const ys = d3.scaleLinear().domain(yDomain ?? [Math.min(0, d3.min(all)), d3.max(all) || 1])
    .range([height - m.bottom, m.top]);
  if (!yDomain) ys.nice();
  if (axes) {
    svg.select(".axis.x").call(d3.axisBottom(xs).ticks(xTicks).tickSizeOuter(0));
    svg.select(".axis.y").call(d3.axisLeft(ys).ticks(yTicks).tickFormat(yFormat ?? d3.format("~g")));
  }
  svg.select(".flip").attr("display", flip == null ? "none" : null)
    .attr("x1", xs(flip ?? 0)).attr("x2", xs(flip ?? 0)).select("title").text(`flips at ${flip}`);
  svg.select(".rule").attr("display", rule == null ? "none" : null)
    .attr("x1", xs(rule ?? 0)).attr("x2", xs(rule ?? 0));
  const line = d3.line().x((_, i) => xs(x[i])).y((v) => ys(v));
  const groups = svg.select(".series").selectAll("g.one").data(series).join((enter) => {
    const g = enter.append("g").attr("class", "one");
    g.append("path");
    return g;
  });
  groups.select("path").attr("class", (s) => `line ${s.className ?? ""}`)
    .attr("data-key", (s) => s.className).attr("data-shape", "line").attr("fill", "none")
    .each(function (s) { styled(d3.select(this), lineStyle(s)); })
    .attr("d", (s) => line(s.values)).attr("data-points", (s) => s.values.length);
  groups.selectAll("circle").data((s) => s.values.map((v) => [v, s.color])).join("circle")
    .attr("r", axes ? 2 : 1.5).attr("fill", (d) => d[1])
    .attr("cx", (_, i) => xs(x[i])).attr("cy", (d) => ys(d[0]));
  return svg;
}
