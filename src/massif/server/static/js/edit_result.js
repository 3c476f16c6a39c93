// The deletion's numbers in the results box: clean accuracy and the attack success rate before
// → after, at the slider's strength, and the ASR per strength before (dashed) and after (solid),
// transfer (the stored attack) and adaptive (a fresh attack through the edited model). Each
// row's title says what its share is of; the chart has axis titles and a key for each line.
import { lineChart } from "./chart.js";
import { strengthScale } from "./explain.js";
import { showBoxes, chartWidth } from "./results.js";
import { esc, formatPercent } from "./store.js";

const $ = (id) => document.getElementById(id);
// Black and red: no group colour (those mean suppressed, shared, emphasized everywhere else).
const COLORS = { adaptive: "#b00", transfer: "#333" };

function row(label, before, after, cls, title) {
  const cell = (v) => (v === undefined ? "…" : formatPercent(v));
  return `<tr class="${cls}"><th title="${esc(title)}">${label}</th><td>${cell(before)}</td>` +
    `<td>${cell(after)}</td></tr>`;
}

// Show an edit answer `r` (EditResult) at the store's strength; `stale`: it answers another
// request than the one wanted, so it is greyed and the status line (which says what is being
// measured) is left alone.
export function showEditResult(store, r, stale) {
  const { graph, strengthIndex } = store.get();
  const result = $("edit-result"), status = $("edit-status");
  $("edit-box").classList.toggle("stale", stale);
  result.dataset.stale = String(stale);
  const K = r.strengths;
  const k = Math.min(strengthIndex ?? K.length - 1, K.length - 1);
  const eps = +K[k].toPrecision(3);
  const scale = strengthScale(graph, store.get().info), sym = scale.symbol;
  const benign = graph.benign.name, target = graph.attack.targeted ? graph.target.name
    : `anything but ${benign}`;
  const asr = (what, at) => `${what}, ${sym} = ${at} (${scale.unit}: ${scale.text}). ASR: among ` +
    `the ${benign} images the model classifies correctly when clean, the share classified as ` +
    `${target}; before: the unedited model, after: with the neurons deleted`;
  result.querySelector("tbody").innerHTML =
    row(`clean acc. ${esc(benign)}`, r.clean_accuracy_benign.before,
        r.clean_accuracy_benign.after, "acc-benign",
        `the share of the ${r.n_images} clean ${benign} images classified as ${benign}, before ` +
        `and after the deletion`) +
    row("clean acc. all classes", r.clean_accuracy_all.before, r.clean_accuracy_all.after,
        "acc-all", `the share of a fixed sample of ${r.n_sample} clean images of all classes ` +
        `classified correctly, before and after the deletion`) +
    row(`ASR transfer ${sym}=${eps}`, r.transfer_asr.before[k], r.transfer_asr.after[k], "asr-transfer",
        asr("Transfer: the analysis's stored attacked images (made through the unedited model)", eps)) +
    row(`ASR adaptive ${sym}=${eps}`, r.adaptive_asr?.before[k], r.adaptive_asr?.after[k], "asr-adaptive",
        asr("Adaptive: a fresh attack made through the model measured", eps)) +
    (r.checks ?? []).map((c) => row(`ASR ${esc(c.name)} ${sym}=${+c.epsilon.toPrecision(3)}`,
      c.asr.before, c.asr.after, `asr-check${c.masking ? " masking" : ""}`,
      asr(`${c.name}: a stronger attack that knows the mask`, +c.epsilon.toPrecision(3)))).join("");
  result.hidden = $("edit-chart").hidden = false;
  $("edit-box").hidden = false;
  showBoxes();
  result.dataset.mask = r.mask.join(",");
  const total = graph.benign.n_images;
  result.dataset.phase = r.checks?.length ? "checked" : r.adaptive_asr ? "full"
    : r.n_images < total ? "preview" : "transfer";
  // Adaptive first, wide and light, so the transfer line drawn over it stays visible where
  // the two agree.
  const series = [];
  if (r.adaptive_asr) series.push(
    { values: r.adaptive_asr.before, color: COLORS.adaptive, dash: "6 3", width: 7, opacity: 0.45,
      className: "adaptive-before", label: "adaptive, before" },
    { values: r.adaptive_asr.after, color: COLORS.adaptive, width: 7, opacity: 0.45,
      className: "adaptive-after", label: "adaptive, after" });
  series.push(
    { values: r.transfer_asr.before, color: COLORS.transfer, dash: "3 2", className: "transfer-before",
      label: "transfer, before" },
    { values: r.transfer_asr.after, color: COLORS.transfer, className: "transfer-after",
      label: "transfer, after" });
  lineChart($("edit-chart"), { x: K, rule: K[k], width: chartWidth(), height: 150,
    yDomain: [0, 1], yFormat: d3.format(".0%"), yTicks: 2,
    xTitle: `attack strength ${sym} (${scale.unit})`, yTitle: "ASR",
    ruleLabel: `slider's ${sym}`, series });
  const phase = result.dataset.phase === "preview"
    ? `estimate on ${r.n_images} of ${total} images, measuring all…`
    : r.adaptive_asr ? `${r.n_images} images, ${r.n_sample} in the all-class sample`
    : `${r.n_images} images · measuring the fresh attack…`;
  if (stale) return;  // the status says what is being measured
  status.classList.remove("problem");
  status.innerHTML = `${r.mask.length} deleted · ${phase}<br>` +
    "transfer: the stored attacked images; adaptive: a fresh attack through the edited model " +
    "(the wide pale lines); hover a row for what its share is of" +
    (r.checks?.length ? "<br>checks: stronger attacks that know the mask, at ε_max" : "") +
    (r.warnings ?? []).map((w) => `<br><span class="problem">warning: ${esc(w)}</span>`).join("");
}
