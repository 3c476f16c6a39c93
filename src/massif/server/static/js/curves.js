// Deletion curves (docs/evaluate.md): is the graph right? For each ranking of neurons (MASSIF's
// emphasized by vulnerability and by importance change, activation change, gradient ×
// activation, Summit's votes, random), the ASR at ε_max after deleting its top k neurons,
// against what those deletions cost the two classes' clean accuracy. Lower and further left is
// better: the attack falls at less cost.
//
// "Deletion curves" shows the analysis's saved curves (massif evaluate, or an earlier job), or
// computes them as a job on the server (about a minute on the default pair: progress, cancel):
// the server answers one request either way.
// The chart draws ASR against cost for each ranking (random: the mean over its draws, with a
// band of ± one spread); the table under it gives each ranking's areas (auc_cost, auc_k; lower
// is better), best first, and clicking a ranking's row deletes its top neurons on the graph.
import * as api from "./api.js";
import { drawKey, keyHeight, lineStyle, styled } from "./chart.js";
import { strengthScale } from "./explain.js";
import { chartWidth, showBoxes } from "./results.js";
import { esc, formatPercent } from "./store.js";

const $ = (id) => document.getElementById(id);
const POLL_MS = 400;
const FINISHED = new Set(["done", "error", "cancelled"]);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
// The same colours as the PNG and SVG that massif evaluate writes (massif/edit/plot.py).
export const RANKING_COLORS = {
  vulnerability: "#d62728", "importance-change": "#ff7f0e", "activation-change": "#1f77b4",
  "gradient-x-activation": "#2ca02c", votes: "#9467bd", random: "#555555",
};

// Draw `curves` (Curves) in `svgElement`, `width` px wide: ASR at ε_max against the cost;
// `scale`: the strength's scale for the axis title (explain.js strengthScale), when known.
export function drawCurves(svgElement, curves, width, scale = null) {
  const svg = d3.select(svgElement).classed("chart", true);
  // Each ranking's line; random's is the mean over its draws, dashed, over a band of ± one spread.
  const style = (c) => lineStyle({ color: RANKING_COLORS[c.ranking] ?? "#333", width: 1.6,
                                   dash: c.ranking === "random" ? "4 3" : null });
  const band = (c) => ({ fill: RANKING_COLORS[c.ranking] ?? "#333", "fill-opacity": 0.15, stroke: "none" });
  const entries = curves.curves.map((c) => ({
    key: c.ranking, label: c.ranking === "random" ? "random: mean ± one spread" : c.ranking,
    shapes: [...(c.ranking === "random" ? [{ shape: "band", style: band(c) }] : []),
             { shape: "line", style: style(c) }] }));
  const key = keyHeight(entries, width - 4, "one dot per k deleted:");
  const height = 180 + key, m = { top: 12 + key, right: 20, bottom: 32, left: 46 };
  svg.attr("width", width).attr("height", height).selectAll("*").remove();
  drawKey(svg, entries, { width: width - 4, title: "one dot per k deleted:" });
  const points = curves.curves.flatMap((c) => c.points);
  const x = d3.scaleLinear().domain([0, Math.max(0.05, d3.max(points, (p) => p.cost) || 0)])
    .nice().range([m.left, width - m.right]);
  const y = d3.scaleLinear().domain([0, 1]).range([height - m.bottom, m.top]);
  svg.append("g").attr("class", "axis x").attr("transform", `translate(0,${height - m.bottom})`)
    .call(d3.axisBottom(x).ticks(4).tickFormat(d3.format(".0%")));
  svg.append("g").attr("class", "axis y").attr("transform", `translate(${m.left},0)`)
    .call(d3.axisLeft(y).ticks(4).tickFormat(d3.format(".0%")));
  svg.append("text").attr("class", "axis-title x").attr("x", width - m.right)
    .attr("y", height - 2).attr("text-anchor", "end")
    .text("cost: clean accuracy lost (the worse class) →");
  svg.append("text").attr("class", "axis-title y").attr("text-anchor", "middle")
    .attr("transform", `translate(10,${(m.top + height - m.bottom) / 2}) rotate(-90)`)
    .text(`ASR at ${scale?.symbol ?? "ε"} = ${+curves.epsilon.toPrecision(3)}` +
          (scale ? ` (${scale.unit})` : ""));
  for (const c of curves.curves) {
    const color = RANKING_COLORS[c.ranking] ?? "#333";
    const g = svg.append("g").attr("class", "curve").attr("data-ranking", c.ranking)
      .attr("data-points", c.points.length);
    if (c.ranking === "random") {
      styled(g.append("path").attr("class", "band").attr("data-key", c.ranking)
        .attr("data-shape", "band"), band(c))
        .attr("d", d3.area().x((p) => x(p.cost)).y0((p) => y(Math.max(0, p.asr - (p.asr_std ?? 0))))
          .y1((p) => y(Math.min(1, p.asr + (p.asr_std ?? 0))))(c.points));
    }
    styled(g.append("path").attr("fill", "none").attr("data-key", c.ranking).attr("data-shape", "line"),
      style(c)).attr("d", d3.line().x((p) => x(p.cost)).y((p) => y(p.asr))(c.points));
    g.selectAll("circle").data(c.points).join("circle").attr("r", 2.6).attr("fill", color)
      .attr("cx", (p) => x(p.cost)).attr("cy", (p) => y(p.asr))
      .append("title").text((p) => `${c.ranking}, k = ${p.k}: ASR ${formatPercent(p.asr)}, ` +
        `cost ${formatPercent(p.cost)} (clean accuracy ${formatPercent(p.clean_accuracy)} ` +
        `${curves.benign}, ${formatPercent(p.target_accuracy)} ${curves.target})`);
  }
}

// The table of areas, best (lowest auc_cost) first; each row a button that deletes the
// ranking's top neurons (random: none to delete).
function tableHtml(curves) {
  const rows = [...curves.curves].sort((a, b) => (a.auc_cost ?? 2) - (b.auc_cost ?? 2));
  const area = (v, s) => (v == null ? "–" : v.toFixed(2) + (s != null ? ` ± ${s.toFixed(2)}` : ""));
  return "<thead><tr><th>ranking</th><th title=\"from 0 to 1, a share like the ASR: the mean " +
    "lowest ASR over every budget of clean accuracy lost, from 0 to the larger of the two " +
    "classes' clean accuracies; lower: the attack falls at less cost\">area (cost)</th>" +
    "<th title=\"from 0 to 1, a share like the ASR: the mean ASR over k = 0 to the largest k " +
    "every ranking reaches, on a log2(1 + k) axis; lower: the attack falls with fewer " +
    "neurons\">area (k)</th></tr></thead><tbody>" + rows.map((c) => {
    const top = c.order.slice(0, Math.min(8, c.order.length));
    const button = top.length
      ? `<button type="button" class="ranking" data-ranking="${esc(c.ranking)}" ` +
        `title="delete its top ${top.length}: ${esc(top.join(", "))}">${esc(c.ranking)}</button>`
      : esc(c.ranking);
    return `<tr data-ranking="${esc(c.ranking)}"><th><span class="swatch" ` +
      `style="background:${RANKING_COLORS[c.ranking] ?? "#333"}"></span>${button}</th>` +
      `<td>${area(c.auc_cost, c.auc_cost_std)}</td><td>${area(c.auc_k, c.auc_k_std)}</td></tr>`;
  }).join("") + "</tbody>";
}

// `blocked()`: why this analysis cannot be edited here (null: it can). Answers {reset}.
export function createCurves(store, { blocked }) {
  let job = null;  // the running job: {id, since, cancelling}
  let shown = null;  // the Curves drawn

  $("curves-run").addEventListener("click", () => run());
  $("curves-cancel").addEventListener("click", () => cancel());
  $("curves-table").addEventListener("click", (event) => {
    const ranking = event.target.closest("button.ranking")?.dataset.ranking;
    const c = shown?.curves.find((r) => r.ranking === ranking);
    if (c) store.set({ masked: c.order.slice(0, Math.min(8, c.order.length)) });
  });

  function showJob(status) {
    const running = status !== null;
    for (const id of ["curves-job", "curves-progress", "curves-cancel"]) $(id).hidden = !running;
    $("curves-run").disabled = running || !!blocked();
    if (!running) return;
    // The time so far and, once the progress tells, the time left at the pace seen so far.
    const seconds = job ? (performance.now() - job.since) / 1000 : 0;
    const left = status.progress > 0.02 && seconds > 2
      ? `, about ${Math.round(seconds / status.progress * (1 - status.progress))} s left` : "";
    $("curves-progress").value = status.progress;
    if (!job?.cancelling) {  // "cancelling…" stays until the job ends
      $("curves-percent").textContent = status.state === "queued" ? "waiting…"
        : `${Math.round(100 * status.progress)}% · ${Math.round(seconds)} s so far${left}`;
    }
  }

  function say(text, problem = false) {
    $("curves-status").textContent = text;
    $("curves-status").classList.toggle("problem", problem);
    $("curves-box").hidden = false;
    showBoxes();
  }

  function draw(curves) {
    shown = curves;
    $("curves-box").hidden = false;
    showBoxes();
    const { graph, info } = store.get();
    drawCurves($("curves-chart"), curves, chartWidth(), graph ? strengthScale(graph, info) : null);
    $("curves-table").innerHTML = tableHtml(curves);
    $("curves-table").hidden = false;
    say(`${curves.n_images} ${curves.benign} images, ${curves.n_target_images} ` +
        `${curves.target}; k = ${curves.ks.join(", ")}; random: ${curves.random_draws} draws; ` +
        `${curves.seconds.toFixed(0)} s. A row deletes that ranking's top neurons.`);
    document.documentElement.dataset.curves = "ready";
  }

  // Saved curves if there are any, else a job that computes (and saves) them.
  async function run() {
    const { key } = store.get();
    if (!key || job || blocked()) return;
    document.documentElement.dataset.curves = "busy";
    let mine = null;
    try {
      let status = await api.startCurves(key);  // the saved curves, or a job computing them
      if (store.get().key !== key) return;
      if (status.state === "done") return draw(status.result);
      say("computing the deletion curves (about a minute on the default pair)…");
      mine = job = { id: status.id, since: performance.now(), cancelling: false };
      showJob(status);
      while (!FINISHED.has(status.state)) {
        await sleep(POLL_MS);
        if (job !== mine) return;
        status = await api.getCurvesJob(status.id);
        if (job !== mine) return;
        showJob(status);
      }
      job = null;
      showJob(null);
      if (status.state === "done") draw(status.result);
      else if (status.state === "cancelled") {
        say("cancelled");
        document.documentElement.dataset.curves = "cancelled";
      } else {
        say(status.error || "the deletion curves failed", true);
        document.documentElement.dataset.curves = "error";
      }
    } catch (e) {
      if (mine !== null && job !== mine) return;
      job = null;
      showJob(null);
      say(e.status ? `the server refused the deletion curves (${e.status}): ${e.message}`
        : `the deletion curves failed: ${e.message}`, true);
      document.documentElement.dataset.curves = "error";
    }
  }

  async function cancel() {
    if (!job) return;
    $("curves-cancel").disabled = true;
    job.cancelling = true;
    $("curves-percent").textContent = "cancelling…";
    try { await api.cancelCurves(job.id); } catch { /* it ended meanwhile: the poll says how */ }
    $("curves-cancel").disabled = false;
  }

  return {
    // Another analysis opened: clear the box; stop a job for the analysis left behind.
    reset() {
      if (job) { api.cancelCurves(job.id).catch(() => {}); job = null; }
      showJob(null);
      shown = null;
      $("curves-chart").replaceChildren();
      $("curves-table").replaceChildren();
      $("curves-table").hidden = true;
      $("curves-status").textContent = "";
      $("curves-box").hidden = true;
      showBoxes();
      delete document.documentElement.dataset.curves;
    },
    // Escape: cancel the running job; whether there was one.
    cancel() {
      if (!job) return false;
      cancel();
      return true;
    },
    // Whether the controls can be used (the edit panel's verdict).
    enable() { $("curves-run").disabled = !!job || !!blocked(); },
  };
}
