// The strength slider: at each strength ε_k it shows which suppressed and emphasized neurons
// have already flipped (the graph view fades the rest) and the attack success rate at ε_k, with
// the strength's scale (the attack's norm on [0, 1] images), an ⓘ that says what each number
// is, and the ASR over every strength as a chart with axes, a title and a key.
import { lineChart } from "./chart.js";
import { infoButton, setInfo, strengthScale } from "./explain.js";
import { flipped, formatPercent } from "./store.js";

export function createStrength(store) {
  const slider = document.getElementById("slider");
  const chart = document.getElementById("asr-chart");
  const asrBox = document.getElementById("asr");
  const unit = document.getElementById("eps-unit");
  asrBox.innerHTML = `<span class="asr-text"></span> ${infoButton("asr", "what the strength, the ASR and the flipped neurons mean")}`;
  const asrText = asrBox.querySelector(".asr-text");
  slider.addEventListener("input", () => store.set({ strengthIndex: +slider.value }));

  function render() {
    const { graph, strengthIndex, info } = store.get();
    if (!graph) return;
    const K = graph.attack.strengths;
    const k = strengthIndex ?? K.length - 1;
    slider.max = String(K.length - 1);
    slider.value = String(k);
    const asr = graph.metrics.attack_success_rate[k];
    const moving = graph.nodes.filter((n) => n.group !== "shared");
    const done = moving.filter((n) => flipped(n, K[k])).length;
    const scale = strengthScale(graph, info);
    const eps = +K[k].toPrecision(4);
    document.getElementById("eps").textContent = `ε = ${eps}`;
    unit.textContent = `(${scale.unit})`;
    unit.title = `${scale.symbol}: ${scale.text}`;
    asrText.textContent = `ASR ${formatPercent(asr)} · ${done} of ${moving.length} neurons flipped`;
    asrBox.dataset.asr = String(asr);
    asrBox.dataset.flipped = String(done);
    asrBox.dataset.k = String(k);
    const benign = graph.benign.name, correct = Math.round(graph.metrics.clean_accuracy * graph.benign.n_images);
    setInfo(asrBox, "asr", `Strength ${scale.symbol} = ${eps} (${scale.unit}): ${scale.text}. ` +
      `ASR (attack success rate) ${formatPercent(asr)}: of the ${correct} ${benign} images the ` +
      `model classifies correctly when clean, the share that the attack at this strength makes ` +
      (graph.attack.targeted ? `it classify as ${graph.target.name}` : `it classify as anything but ${benign}`) +
      `. ${done} of ${moving.length} neurons flipped: the suppressed and emphasized neurons whose ` +
      `flip strength is at most this strength (the others fade on the graph).`);
    lineChart(chart, { x: K, rule: K[k], width: Math.max(180, chart.parentElement.clientWidth || 216),
      height: 80, yDomain: [0, 1], yFormat: d3.format(".0%"), yTicks: 2, xTicks: 4,
      xTitle: `${scale.symbol} (${scale.unit})`, yTitle: "ASR", title: "ASR over strength",
      ruleLabel: "slider's " + scale.symbol,
      series: [{ values: graph.metrics.attack_success_rate, color: "#b00", className: "asr", label: "ASR" }] });
  }
  store.subscribe((state, prev) => {
    if (state.graph !== prev.graph || state.strengthIndex !== prev.strengthIndex) render();
  });
}
