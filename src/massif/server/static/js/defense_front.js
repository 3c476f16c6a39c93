// The defense search's trade-off: the Pareto front (DefenseResult.front) of adaptive ASR against
// clean accuracy on all classes, over every mask the search measured on all images (the
// unedited model, the start, the greedy path, the top emphasized neurons, each random draw).
// Every measured mask is a grey dot; the front is a staircase through the masks no other beats
// on both, each dot coloured by where it comes from. A front mask that takes the benign class
// with it (under half its unedited accuracy) is ringed in red: its ASR of 0 stops nothing.
import { DEFENSE_COLORS } from "./defense_chart.js";
import { formatPercent } from "./store.js";

const COLORS = {
  unedited: "#333", start: "#5e3c99", greedy: DEFENSE_COLORS.greedy,
  "top emphasized": DEFENSE_COLORS.emphasized, random: DEFENSE_COLORS.random,
};
const GONE = "#d7191c";

// Every mask the result holds, as {adaptive_asr, clean_accuracy, clean_accuracy_benign, size}.
function measured(d) {
  const out = [d.before, ...(d.from_start ? [d.from_start] : []), ...d.greedy, ...d.top_emphasized];
  for (const r of d.random) {
    r.masks.forEach((mask, i) => out.push({
      size: mask.length, adaptive_asr: r.adaptive_asr_draws[i],
      clean_accuracy: r.clean_accuracy_draws[i],
      clean_accuracy_benign: r.clean_accuracy_benign_draws?.[i] ?? null,
    }));
  }
  return out;
}

// Draw result `d` (DefenseResult) in `svgElement`, `width` px wide.
export function drawDefenseFront(svgElement, d, width) {
  const svg = d3.select(svgElement);
  const front = d.front ?? [];
  const height = 88, m = { top: 15, right: 12, bottom: 26, left: 46 };
  svg.attr("width", width).attr("height", height).selectAll("*").remove();
  svgElement.dataset.front = front.length;
  if (!front.length) return;
  const all = measured(d);
  svgElement.dataset.measured = all.length;
  const x = d3.scaleLinear().domain(d3.extent(all, (p) => p.clean_accuracy)).nice()
    .range([m.left, width - m.right]);
  const y = d3.scaleLinear().domain([0, d3.max(all, (p) => p.adaptive_asr) || 1]).nice()
    .range([height - m.bottom, m.top]);
  const [lo, hi] = x.domain();
  svg.append("g").attr("class", "axis").attr("transform", `translate(0,${height - m.bottom})`)
    .call(d3.axisBottom(x).ticks(3).tickFormat(d3.format(hi - lo < 0.05 ? ".1%" : ".0%")));
  svg.append("g").attr("class", "axis").attr("transform", `translate(${m.left},0)`)
    .call(d3.axisLeft(y).ticks(2).tickFormat(d3.format(".0%")));
  svg.append("text").attr("class", "axis-title x").attr("x", width - m.right)
    .attr("y", height - 2).attr("text-anchor", "end").text("clean accuracy, all classes →");
  svg.append("text").attr("class", "axis-title y").attr("text-anchor", "middle")
    .attr("transform", `translate(10,${(m.top + height - m.bottom) / 2}) rotate(-90)`)
    .text("ASR");
  const from = d.start?.length ? ` · from ${d.start.length} deleted` : "";
  svg.append("text").attr("class", "front-title").attr("x", m.left).attr("y", 10)
    .text(`Pareto front: ${front.length} of ${all.length} masks${from}`);
  svg.append("g").attr("class", "measured").selectAll("circle").data(all).join("circle")
    .attr("r", 1.8).attr("fill", "#bbb")
    .attr("cx", (p) => x(p.clean_accuracy)).attr("cy", (p) => y(p.adaptive_asr));
  const sorted = [...front].sort((a, b) => a.clean_accuracy - b.clean_accuracy);
  svg.append("path").attr("class", "front")
    .attr("d", d3.line().curve(d3.curveStepBefore).x((p) => x(p.clean_accuracy))
      .y((p) => y(p.adaptive_asr))(sorted))
    .attr("fill", "none").attr("stroke", "#222").attr("stroke-width", 1.4);
  const gone = d.before.clean_accuracy_benign / 2;
  svg.append("g").attr("class", "front-points").selectAll("circle").data(front).join("circle")
    .attr("class", "front-point").attr("data-source", (p) => p.source)
    .attr("r", 3.6).attr("fill", (p) => COLORS[p.source] ?? "#333")
    .attr("stroke", (p) => (p.clean_accuracy_benign < gone ? GONE : "#fff"))
    .attr("stroke-width", (p) => (p.clean_accuracy_benign < gone ? 2 : 1))
    .attr("cx", (p) => x(p.clean_accuracy)).attr("cy", (p) => y(p.adaptive_asr))
    .append("title").text((p) => `${p.source}, ${p.size} deleted: ASR ` +
      `${formatPercent(p.adaptive_asr)}, clean ${formatPercent(p.clean_accuracy)} (all), ` +
      `${formatPercent(p.clean_accuracy_benign)} (benign class)` +
      (p.clean_accuracy_benign < gone ? ": takes the benign class with it" : "") +
      (p.mask.length ? `\n${p.mask.join(", ")}` : ""));
}

export function clearDefenseFront(svgElement) {
  d3.select(svgElement).selectAll("*").remove();
  delete svgElement.dataset.front;
  delete svgElement.dataset.measured;
}
