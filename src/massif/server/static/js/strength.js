// The strength slider: at each strength ε_k it shows which suppressed and emphasized neurons
// have already flipped (the graph view fades the rest) and the attack success rate at ε_k.
import { lineChart } from "./chart.js";
import { flipped, formatPercent } from "./store.js";

export function createStrength(store) {
  const slider = document.getElementById("slider");
  const chart = document.getElementById("asr-chart");
  slider.addEventListener("input", () => store.set({ strengthIndex: +slider.value }));

  function render() {
    const { graph, strengthIndex } = store.get();
    if (!graph) return;
    const K = graph.attack.strengths;
    const k = strengthIndex ?? K.length - 1;
    slider.max = String(K.length - 1);
    slider.value = String(k);
    const asr = graph.metrics.attack_success_rate[k];
    const moving = graph.nodes.filter((n) => n.group !== "shared");
    const done = moving.filter((n) => flipped(n, K[k])).length;
    document.getElementById("eps").textContent = `ε = ${+K[k].toPrecision(4)}`;
    const asrText = document.getElementById("asr");
    asrText.textContent = `ASR ${formatPercent(asr)} · ${done} of ${moving.length} neurons flipped`;
    asrText.dataset.asr = String(asr);
    asrText.dataset.flipped = String(done);
    asrText.dataset.k = String(k);
    lineChart(chart, { x: K, rule: K[k], width: 210, height: 44, axes: false,
      series: [{ values: graph.metrics.attack_success_rate, color: "#b00", className: "asr" }] });
  }
  store.subscribe((state, prev) => {
    if (state.graph !== prev.graph || state.strengthIndex !== prev.strengthIndex) render();
  });
}
