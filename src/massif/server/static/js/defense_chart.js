// The defense search's chart: adaptive ASR at ε_max against clean accuracy on all classes, for
// the greedy picks (one point per pick, from the unedited model on) and, once measured, the two
// baselines (the top emphasized neurons, random neurons).
import { formatPercent } from "./store.js";

export const DEFENSE_COLORS = { greedy: "#1a9641", random: "#999", emphasized: "#f1852b" };

// Draw result `d` (DefenseResult) in `svgElement`, `width` px wide.
export function drawDefenseChart(svgElement, d, width) {
  const svg = d3.select(svgElement);
  const height = 170, m = { top: 10, right: 12, bottom: 32, left: 46 };
  svg.attr("width", width).attr("height", height).selectAll("*").remove();
  const curves = [  // every curve starts at the unedited model
    { name: "greedy", color: DEFENSE_COLORS.greedy, points: [d.before, ...d.greedy] },
    { name: "emphasized", color: DEFENSE_COLORS.emphasized, points: [d.before, ...d.top_emphasized] },
    { name: "random", color: DEFENSE_COLORS.random, points: [d.before, ...d.random] },
  ].filter((c) => c.name === "greedy" || d.complete);
  const all = curves.flatMap((c) => c.points);
  const x = d3.scaleLinear().domain(d3.extent(all, (p) => p.clean_accuracy)).nice()
    .range([m.left, width - m.right]);
  const y = d3.scaleLinear().domain([0, d3.max(all, (p) => p.adaptive_asr) || 1]).nice()
    .range([height - m.bottom, m.top]);
  const [lo, hi] = x.domain();  // a narrow range needs a decimal to tell its ticks apart
  svg.append("g").attr("class", "axis").attr("transform", `translate(0,${height - m.bottom})`)
    .call(d3.axisBottom(x).ticks(3).tickFormat(d3.format(hi - lo < 0.05 ? ".1%" : ".0%")));
  svg.append("g").attr("class", "axis").attr("transform", `translate(${m.left},0)`)
    .call(d3.axisLeft(y).ticks(4).tickFormat(d3.format(".0%")));
  svg.append("text").attr("class", "axis-title x").attr("x", width - m.right)
    .attr("y", height - 2).attr("text-anchor", "end").text("clean accuracy, all classes →");
  svg.append("text").attr("class", "axis-title y").attr("text-anchor", "middle")
    .attr("transform", `translate(10,${(m.top + height - m.bottom) / 2}) rotate(-90)`)
    .text(`adaptive ASR at ε = ${+d.epsilon.toPrecision(3)}`);
  const line = d3.line().x((p) => x(p.clean_accuracy)).y((p) => y(p.adaptive_asr));
  for (const c of curves) {
    const g = svg.append("g").attr("class", `curve ${c.name}`);
    g.append("path").attr("d", line(c.points)).attr("fill", "none").attr("stroke", c.color)
      .attr("stroke-width", 1.8).attr("data-points", c.points.length);
    g.selectAll("circle").data(c.points).join("circle").attr("r", 2.2).attr("fill", c.color)
      .attr("cx", (p) => x(p.clean_accuracy)).attr("cy", (p) => y(p.adaptive_asr))
      .append("title").text((p) => `${p.size} masked: ASR ${formatPercent(p.adaptive_asr)}, ` +
        `clean ${formatPercent(p.clean_accuracy)}`);
  }
}
