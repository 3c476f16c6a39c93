// The legend: group colours, the blend toward purple for vulnerability, the divergence mark,
// edge width and the placeholder used until a neuron has a feature visualization.
import { BLEND, COLORS } from "./store.js";

export function drawLegend(element) {
  const ramp = (c) => `linear-gradient(to right, ${c}, ${d3.interpolateLab(c, COLORS.shared)(BLEND)})`;
  element.innerHTML = `
    <div class="legend-row"><span class="swatch" style="background:${COLORS.suppressed}"></span>suppressed: benign graph only</div>
    <div class="legend-row"><span class="swatch" style="background:${COLORS.shared}"></span>shared: both graphs</div>
    <div class="legend-row"><span class="swatch" style="background:${COLORS.emphasized}"></span>emphasized: attacked graph only</div>
    <div class="legend-row"><span class="ramp" style="background:${ramp(COLORS.suppressed)}"></span><span class="ramp" style="background:${ramp(COLORS.emphasized)}"></span></div>
    <div class="legend-row">↑ more vulnerable: nearer the middle, more purple</div>
    <div class="legend-row"><span class="swatch" style="background:#fff4d6;border:1px solid #e0c070"></span>◆ divergence layer</div>
    <div class="legend-row"><svg width="40" height="12"><line x1="0" y1="6" x2="40" y2="6" stroke="#999" stroke-width="4"/></svg>edge width: influence</div>
    <div class="legend-row"><span class="swatch" style="border:2px dashed #999"></span>no feature visualization yet</div>
    <div class="legend-row"><span class="swatch" style="background:#ccc;opacity:.3"></span>not flipped at this strength</div>`;
}
