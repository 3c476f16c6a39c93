// The defense search's chart: adaptive ASR at ε_max against clean accuracy on all classes, for
// the greedy picks (one point per pick, from the unedited model on) and, once measured, the two
// baselines (the top emphasized neurons, random neurons), with a key for each curve.
import { drawKey, keyHeight, lineStyle, styled } from "./chart.js";
import { COLORS, formatPercent } from "./store.js";

// "top emphasized" in the emphasized group's colour of the palette chosen when it is drawn.
export const DEFENSE_COLORS = { greedy: "#1a9641", random: "#999", get emphasized() { return COLORS.emphasized; } };

// The clean-accuracy axis of both defense charts, over `range` px: at least two ticks, as
// percentages with as many decimals as tell them apart (the masks often differ by tenths of a
// point, and all of them may have the same accuracy).
function accuracyAxis(values, range) {
  let [lo, hi] = d3.extent(values);
  if (hi - lo < 0.002) { lo -= 0.001; hi += 0.001; }
  const x = d3.scaleLinear().domain([lo, hi]).nice().range(range);
  let ticks = x.ticks(3);
  if (ticks.length < 2) ticks = x.domain();
  const step = ticks[1] - ticks[0];
  const axis = d3.axisBottom(x).tickValues(ticks)
    .tickFormat(d3.format(`.${Math.max(0, d3.precisionFixed(step) - 2)}%`));
  return { x, axis };
}

// Both defense charts' frame in `svg` (width × height, margins `m`): adaptive ASR (y, `yTicks`
// ticks, titled `yTitle`) against the clean accuracy on all classes of `points` (x); their scales.
export function accuracyFrame(svg, points, { width, height, m, yTicks, yTitle }) {
  const { x, axis } = accuracyAxis(points.map((p) => p.clean_accuracy), [m.left, width - m.right]);
  const y = d3.scaleLinear().domain([0, d3.max(points, (p) => p.adaptive_asr) || 1]).nice()
    .range([height - m.bottom, m.top]);
  svg.append("g").attr("class", "axis x").attr("transform", `translate(0,${height - m.bottom})`)
    .call(axis);
  svg.append("g").attr("class", "axis y").attr("transform", `translate(${m.left},0)`)
    .call(d3.axisLeft(y).ticks(yTicks).tickFormat(d3.format(".0%")));
  svg.append("text").attr("class", "axis-title x").attr("x", width - m.right)
    .attr("y", height - 2).attr("text-anchor", "end").text("clean accuracy, all classes →");
  svg.append("text").attr("class", "axis-title y").attr("text-anchor", "middle")
    .attr("transform", `translate(10,${(m.top + height - m.bottom) / 2}) rotate(-90)`)
    .text(yTitle);
  return { x, y };
}

// Draw result `d` (DefenseResult) in `svgElement`, `width` px wide.
export function drawDefenseChart(svgElement, d, width) {
  const svg = d3.select(svgElement).classed("chart", true);
  const curves = [  // every curve starts at the unedited model
    { name: "greedy", color: DEFENSE_COLORS.greedy, points: [d.before, ...d.greedy],
      label: "greedy picks" },
    { name: "emphasized", color: DEFENSE_COLORS.emphasized, points: [d.before, ...d.top_emphasized],
      label: "top emphasized" },
    { name: "random", color: DEFENSE_COLORS.random, points: [d.before, ...d.random],
      label: `random, mean of ${d.random_draws}` },
  ].filter((c) => c.name === "greedy" || d.complete);
  const entries = curves.map((c) => ({ key: c.name, label: c.label,
    shapes: [{ shape: "line", style: lineStyle(c) }] }));
  const key = keyHeight(entries, width - 4, "each dot: one more neuron deleted;");
  const height = 170 + key, m = { top: 10 + key, right: 20, bottom: 32, left: 46 };
  svg.attr("width", width).attr("height", height).selectAll("*").remove();
  drawKey(svg, entries, { width: width - 4, title: "each dot: one more neuron deleted;" });
  const all = curves.flatMap((c) => c.points);
  const { x, y } = accuracyFrame(svg, all, { width, height, m, yTicks: 4,
    yTitle: `adaptive ASR at ε = ${+d.epsilon.toPrecision(3)}` });
  const line = d3.line().x((p) => x(p.clean_accuracy)).y((p) => y(p.adaptive_asr));
  for (const c of curves) {
    const g = svg.append("g").attr("class", `curve ${c.name}`);
    styled(g.append("path").attr("d", line(c.points)).attr("fill", "none")
      .attr("data-key", c.name).attr("data-shape", "line"), lineStyle(c))
      .attr("data-points", c.points.length);
    g.selectAll("circle").data(c.points).join("circle").attr("r", 2.2).attr("fill", c.color)
      .attr("cx", (p) => x(p.clean_accuracy)).attr("cy", (p) => y(p.adaptive_asr))
      .append("title").text((p) => `${p.size} masked: ASR ${formatPercent(p.adaptive_asr)}, ` +
        `clean ${formatPercent(p.clean_accuracy)}`);
  }
}
