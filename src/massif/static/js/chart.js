// A small line chart over the attack strengths (the hover card's curves, the ASR sparkline).
export function lineChart(svgElement, { x, series, rule = null, flip = null, width = 240,
                                        height = 110, axes = true, yFormat = null }) {
  const svg = d3.select(svgElement).attr("width", width).attr("height", height).attr("class", "chart");
  svg.selectAll("*").remove();
  const m = axes ? { top: 6, right: 8, bottom: 18, left: 38 } : { top: 3, right: 3, bottom: 3, left: 3 };
  const xs = d3.scaleLinear().domain(d3.extent(x)).range([m.left, width - m.right]);
  const all = series.flatMap((s) => s.values);
  const ys = d3.scaleLinear().domain([Math.min(0, d3.min(all)), d3.max(all) || 1]).nice()
    .range([height - m.bottom, m.top]);
  if (axes) {
    svg.append("g").attr("class", "axis").attr("transform", `translate(0,${height - m.bottom})`)
      .call(d3.axisBottom(xs).ticks(5).tickSizeOuter(0));
    svg.append("g").attr("class", "axis").attr("transform", `translate(${m.left},0)`)
      .call(d3.axisLeft(ys).ticks(4).tickFormat(yFormat ?? d3.format("~g")));
  }
  if (flip != null) {
    svg.append("line").attr("class", "flip").attr("x1", xs(flip)).attr("x2", xs(flip))
      .attr("y1", m.top).attr("y2", height - m.bottom).append("title").text(`flips at ${flip}`);
  }
  if (rule != null) {
    svg.append("line").attr("class", "rule").attr("x1", xs(rule)).attr("x2", xs(rule))
      .attr("y1", m.top).attr("y2", height - m.bottom);
  }
  const line = d3.line().x((_, i) => xs(x[i])).y((v) => ys(v));
  for (const s of series) {
    svg.append("path").attr("class", `line ${s.className ?? ""}`).attr("stroke", s.color)
      .attr("stroke-dasharray", s.dash ?? null).attr("d", line(s.values))
      .attr("data-points", s.values.length);
    svg.append("g").selectAll("circle").data(s.values).join("circle")
      .attr("r", axes ? 2 : 1.5).attr("fill", s.color)
      .attr("cx", (_, i) => xs(x[i])).attr("cy", (v) => ys(v));
  }
  return svg;
}
