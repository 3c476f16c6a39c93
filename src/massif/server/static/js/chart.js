// A small line chart over the attack strengths (the hover card's curves, the ASR sparkline).
//
// The chart is built once per SVG element and then only updated (paths, dots, axis ticks), so
// redrawing it on every hover costs well under a millisecond of layout.
export function lineChart(svgElement, { x, series, rule = null, flip = null, width = 240,
                                        height = 110, axes = true, yFormat = null,
                                        xTitle = null, yTitle = null }) {
  const svg = d3.select(svgElement).attr("width", width).attr("height", height).classed("chart", true);
  const m = axes ? { top: 6, right: 8, bottom: xTitle ? 28 : 18, left: yTitle ? 44 : 38 }
    : { top: 3, right: 3, bottom: 3, left: 3 };
  const built = `${width}x${height}:${xTitle}:${yTitle}`;
  if (svgElement.dataset.built !== built) {
    svg.selectAll("*").remove();
    svg.append("g").attr("class", "axis x").attr("transform", `translate(0,${height - m.bottom})`);
    svg.append("g").attr("class", "axis y").attr("transform", `translate(${m.left},0)`);
    svg.append("line").attr("class", "flip").attr("y1", m.top).attr("y2", height - m.bottom)
      .append("title");
    svg.append("line").attr("class", "rule").attr("y1", m.top).attr("y2", height - m.bottom);
    svg.append("g").attr("class", "series");
    if (xTitle) svg.append("text").attr("class", "axis-title x").attr("text-anchor", "end")
      .attr("x", width - m.right).attr("y", height - 2).text(xTitle);
    if (yTitle) svg.append("text").attr("class", "axis-title y").attr("text-anchor", "middle")
      .attr("transform", `translate(9,${(m.top + height - m.bottom) / 2}) rotate(-90)`).text(yTitle);
    svgElement.dataset.built = built;
  }
  const xs = d3.scaleLinear().domain(d3.extent(x)).range([m.left, width - m.right]);
  const all = series.flatMap((s) => s.values);
  const ys = d3.scaleLinear().domain([Math.min(0, d3.min(all)), d3.max(all) || 1]).nice()
    .range([height - m.bottom, m.top]);
  if (axes) {
    svg.select(".axis.x").call(d3.axisBottom(xs).ticks(5).tickSizeOuter(0));
    svg.select(".axis.y").call(d3.axisLeft(ys).ticks(4).tickFormat(yFormat ?? d3.format("~g")));
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
  groups.select("path").attr("class", (s) => `line ${s.className ?? ""}`).attr("stroke", (s) => s.color)
    .attr("stroke-width", (s) => s.width ?? null).attr("stroke-opacity", (s) => s.opacity ?? null)
    .attr("stroke-dasharray", (s) => s.dash ?? null).attr("d", (s) => line(s.values))
    .attr("data-points", (s) => s.values.length);
  groups.selectAll("circle").data((s) => s.values.map((v) => [v, s.color])).join("circle")
    .attr("r", axes ? 2 : 1.5).attr("fill", (d) => d[1])
    .attr("cx", (_, i) => xs(x[i])).attr("cy", (d) => ys(d[0]));
  return svg;
}
