// The defense search's trade-off: the Pareto front (DefenseResult.front) of adaptive ASR against
// clean accuracy on all classes, over every mask the search measured on all images (the
// unedited model, the start, the greedy path, the top emphasized neurons, each random draw).
// Every measured mask is a grey dot; the front is a staircase through the masks no other beats
// on both, each dot coloured by where it comes from. A front mask that takes the benign class
// with it (under half its unedited accuracy) is ringed in red: its ASR of 0 stops nothing. A key
// under the title names each kind of dot drawn, the staircase and the ring.
import { drawKey, keyHeight, styled } from "./chart.js";
import { DEFENSE_COLORS, accuracyFrame } from "./defense_chart.js";
import { formatPercent } from "./store.js";

const COLORS = {
  unedited: "#333", start: "#5e3c99", greedy: DEFENSE_COLORS.greedy,
  "top emphasized": DEFENSE_COLORS.emphasized, random: DEFENSE_COLORS.random,
};
const GONE = "#d7191c";
const MEASURED = { fill: "#bbb", stroke: "none", r: 1.8 };
const FRONT = { stroke: "#222", "stroke-width": 1.4, "stroke-dasharray": "none" };
const RING = { fill: "none", stroke: GONE, "stroke-width": 2, r: 5.6 };
const point = (source) => ({ fill: COLORS[source] ?? "#333", stroke: "#fff", "stroke-width": 1, r: 3.6 });

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
  const svg = d3.select(svgElement).classed("chart", true);
  const front = d.front ?? [];
  svg.selectAll("*").remove();
  svgElement.dataset.front = front.length;
  if (!front.length) return;
  const gone = d.before.clean_accuracy_benign / 2;
  const sources = [...new Set(front.map((p) => p.source))];
  const entries = [
    { key: "measured", label: "a mask measured", shapes: [{ shape: "dot", style: MEASURED }] },
    { key: "front", label: "the front", shapes: [{ shape: "line", style: FRONT }] },
    ...sources.map((source) => ({ key: `source-${source}`, label: source,
                                  shapes: [{ shape: "dot", style: point(source) }] })),
    ...(front.some((p) => p.clean_accuracy_benign < gone)
      ? [{ key: "gone", label: "takes the benign class", shapes: [{ shape: "ring", style: RING }] }]
      : []),
  ];
  const key = keyHeight(entries, width - 4);
  const height = 100 + key, m = { top: 15 + key, right: 20, bottom: 26, left: 46 };
  svg.attr("width", width).attr("height", height);
  drawKey(svg, entries, { width: width - 4, top: 13 });
  const all = measured(d);
  svgElement.dataset.measured = all.length;
  const { x, y } = accuracyFrame(svg, all, { width, height, m, yTicks: 2, yTitle: "adaptive ASR" });
  const from = d.start?.length ? ` · from ${d.start.length} deleted` : "";
  svg.append("text").attr("class", "front-title").attr("x", m.left).attr("y", 10)
    .text(`Pareto front: ${front.length} of ${all.length} masks${from}`);
  styled(svg.append("g").attr("class", "measured").selectAll("circle").data(all).join("circle")
    .attr("data-key", "measured").attr("data-shape", "dot"), MEASURED)
    .attr("cx", (p) => x(p.clean_accuracy)).attr("cy", (p) => y(p.adaptive_asr));
  const sorted = [...front].sort((a, b) => a.clean_accuracy - b.clean_accuracy);
  styled(svg.append("path").attr("class", "front").attr("data-key", "front").attr("data-shape", "line")
    .attr("d", d3.line().curve(d3.curveStepBefore).x((p) => x(p.clean_accuracy))
      .y((p) => y(p.adaptive_asr))(sorted))
    .attr("fill", "none"), FRONT);
  styled(svg.append("g").attr("class", "rings").selectAll("circle")
    .data(front.filter((p) => p.clean_accuracy_benign < gone)).join("circle")
    .attr("data-key", "gone").attr("data-shape", "ring"), RING)
    .attr("cx", (p) => x(p.clean_accuracy)).attr("cy", (p) => y(p.adaptive_asr));
  svg.append("g").attr("class", "front-points").selectAll("circle").data(front).join("circle")
    .attr("class", "front-point").attr("data-source", (p) => p.source)
    .attr("data-key", (p) => `source-${p.source}`).attr("data-shape", "dot")
    .each(function (p) { styled(d3.select(this), point(p.source)); })
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
