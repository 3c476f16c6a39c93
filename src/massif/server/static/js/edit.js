// The edit panel: delete (mask) neurons and watch the attack change (the `edit` stage).
//
// With "click deletes neurons" on, a click on a node adds it to the mask or takes it out (the
// graph view marks masked nodes); otherwise a click pins the node as usual. Every change POSTs
// the mask to /graphs/{key}/edit (the previous requests are aborted), which answers
// clean accuracy and the attack success rate per strength before and after the edit, for the
// stored adversarial images (transfer) and for a fresh attack through the edited model
// (adaptive). It asks three times, so the panel updates at once and then sharpens: a preview
// (the first 250 images, no fresh attack: well under a second on the bundled model), all images
// without the fresh attack, then with it (the slow part).
// The numbers and curves show at the top of the right-hand panel, in view whatever the window;
// while a new mask is measured the previous numbers stay there, greyed, until its own arrive.
// An analysis the server cannot edit (made with another model, or a server without its data)
// has the controls disabled with the reason beside them; any other refusal or failure of an
// edit or defense request is written in red in the results box, which then shows.
// "Suggest a defense" starts a search as a job on the server (it takes seconds to minutes), shows
// its progress with a cancel button while it runs and lists (and rings on the graph) the greedy
// picks as the search finds them, then draws the greedy search's ASR against clean accuracy
// beside two baselines.
import * as api from "./api.js";
import { lineChart } from "./chart.js";
import { esc, formatPercent } from "./store.js";

const $ = (id) => document.getElementById(id);
const COLORS = { adaptive: "#b00", transfer: "#2c7bb6", greedy: "#1a9641", random: "#999",
                 emphasized: "#f1852b" };
const POLL_MS = 300;  // how often a running defense search is asked for its progress
const FINISHED = new Set(["done", "error", "cancelled"]);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Save a Blob as a file: the export is a POST, so a plain link cannot fetch it.
function download(blob, filename) {
  const url = URL.createObjectURL(blob);
  const a = Object.assign(document.createElement("a"), { href: url, download: filename });
  document.body.append(a);
  a.click();
  a.remove();
  // Not at once: the browser may still be reading the URL when click() returns.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

export function createEdit(store) {
  const toggle = $("edit-mode"), list = $("masked"), clear = $("mask-clear");
  const result = $("edit-result"), status = $("edit-status"), exportButton = $("mask-export");
  let controller = null;
  let last = null;  // the latest answer, shown again when the strength slider moves
  let search = null;  // the running defense search: {id}
  let blocked = null;  // why this analysis cannot be edited here (null: it can)
  // Which request numbers answer: the mask and mode, as text; the box greys what answers
  // another request than the one wanted.
  const tagOf = (masked, maskMode) => `${masked.join(",")}|${maskMode}`;
  let wanted = null;
  const chartWidth = () => Math.max(200, $("results").clientWidth || 250);

  // The results box shows whichever of its two parts has something to say.
  function showBoxes() {
    $("results").hidden = $("edit-box").hidden && $("defense-box").hidden;
  }

  toggle.addEventListener("change", () => store.set({ editMode: toggle.checked }));

  // A note under the edit controls: a hint, or (problem) why they cannot be used.
  function note(text, problem = false) {
    $("edit-note").textContent = text;
    $("edit-note").classList.toggle("problem", problem);
  }

  // Disable deleting and defenses for this analysis, saying why beside the controls (null:
  // enable them again).
  function block(reason) {
    blocked = reason;
    for (const id of ["edit-mode", "defense", "budget", "mask-export"]) $(id).disabled = !!reason;
    if (reason && toggle.checked) { toggle.checked = false; store.set({ editMode: false }); }
    note(reason ?? "", !!reason);
  }

  // Why the server cannot edit this analysis, known from what the page has already: a server
  // without a dataset, or an analysis made with another model than the server's (the server
  // answers 422 to every edit then).
  function whyNot(state) {
    const { info, graph } = state;
    if (api.offline) return "This is a standalone report: run `massif serve` to delete neurons or search for defenses.";
    if (!info?.can_analyze) {
      return `Deleting neurons and defenses need a server that computes: ${info?.why_not ?? "this one cannot"}`;
    }
    if (graph && graph.model.fingerprint !== info.model_fingerprint) {
      // Two weights of one model have one name: then the fingerprints tell them apart.
      const same = graph.model.name === info.model;
      const mine = same ? `${graph.model.name} ${graph.model.fingerprint}` : graph.model.name;
      const its = same ? `${info.model} ${info.model_fingerprint}` : info.model;
      return `Made with model ${mine}; this server computes with ${its}, so it cannot delete ` +
        "this analysis's neurons or search for defenses.";
    }
    return null;
  }

  // Build the server's editors as soon as an analysis opens, so the first deletion is answered
  // as fast as the next (building them costs seconds; the server builds each analysis's once).
  // An analysis the server cannot edit gets its controls disabled, with the reason: known at
  // once for another model, or from the server's refusal (4xx, e.g. another dataset).
  function warm(state) {
    const { key } = state;
    const html = document.documentElement;
    const reason = key ? whyNot(state) : null;
    block(reason);
    if (!key || reason) { html.dataset.editor = "unavailable"; return; }
    html.dataset.editor = "warming";
    api.warmEditor(key).then(() => {
      if (store.get().key === key) html.dataset.editor = "ready";
    }).catch((e) => {
      if (store.get().key !== key) return;
      html.dataset.editor = "unavailable";
      if (e.status >= 400 && e.status < 500) block(`Deleting neurons is not available for this analysis: ${e.message}`);
      else note(`Preparing to delete neurons failed (${e.message}); a deletion tries again.`, true);
    });
  }

  // A refusal or failure of an edit request, in red in the results box (shown).
  function editProblem(message) {
    status.textContent = message;
    status.classList.add("problem");
    $("edit-box").hidden = false;
    showBoxes();
    document.documentElement.dataset.edit = "error";
  }
  clear.addEventListener("click", () => store.set({ masked: [] }));
  for (const radio of document.querySelectorAll("#mask-mode input")) {
    radio.addEventListener("change", () => store.set({ maskMode: radio.value }));
  }
  list.addEventListener("click", (event) => {
    const id = event.target.closest("[data-id]")?.dataset.id;
    if (id) store.set({ masked: store.get().masked.filter((m) => m !== id) });
  });
  $("defense-form").addEventListener("submit", (event) => {
    event.preventDefault();
    suggest();
  });
  $("defense-cancel").addEventListener("click", () => cancelSearch());
  $("defense-picks").addEventListener("click", (event) => {
    const id = event.target.closest("button.neuron")?.dataset.id;
    if (id) store.set({ pins: [id] });
  });
  exportButton.addEventListener("click", () => exportModel());

  async function exportModel() {
    const { key, masked, maskMode } = store.get();
    if (!key || masked.length === 0) return;
    exportButton.disabled = true;
    try {
      const blob = await api.getEditedModel(key, { mask: masked, mode: maskMode });
      download(blob, `${key}-edited.pt`);
    } catch (e) {
      editProblem(`export failed: ${e.message}`);
    } finally {
      exportButton.disabled = !!blocked;
    }
  }

  function row(label, before, after, cls) {
    const cell = (v) => (v === undefined ? "…" : formatPercent(v));
    return `<tr class="${cls}"><th>${label}</th><td>${cell(before)}</td>` +
      `<td>${cell(after)}</td></tr>`;
  }

  // Show an answer; `tag` says which request it answers (greyed when not the one wanted).
  function show(r, tag) {
    const { graph, strengthIndex } = store.get();
    const stale = tag !== wanted;
    $("edit-box").classList.toggle("stale", stale);
    result.dataset.stale = String(stale);
    const K = r.strengths;
    const k = Math.min(strengthIndex ?? K.length - 1, K.length - 1);
    const eps = +K[k].toPrecision(3);
    result.querySelector("tbody").innerHTML =
      row(`clean acc. ${esc(graph.benign.name)}`, r.clean_accuracy_benign.before,
          r.clean_accuracy_benign.after, "acc-benign") +
      row("clean acc. all classes", r.clean_accuracy_all.before, r.clean_accuracy_all.after,
          "acc-all") +
      row(`ASR transfer ε=${eps}`, r.transfer_asr.before[k], r.transfer_asr.after[k], "asr-transfer") +
      row(`ASR adaptive ε=${eps}`, r.adaptive_asr?.before[k], r.adaptive_asr?.after[k], "asr-adaptive");
    result.hidden = $("edit-chart").hidden = false;
    $("edit-box").hidden = false;
    showBoxes();
    result.dataset.mask = r.mask.join(",");
    const total = store.get().graph.benign.n_images;
    result.dataset.phase = r.adaptive_asr ? "full" : r.n_images < total ? "preview" : "transfer";
    // Adaptive first, wide and light, so the transfer line drawn over it stays visible where
    // the two agree.
    const series = [];
    if (r.adaptive_asr) series.push(
      { values: r.adaptive_asr.before, color: COLORS.adaptive, dash: "6 3", width: 7, opacity: 0.45, className: "adaptive-before" },
      { values: r.adaptive_asr.after, color: COLORS.adaptive, width: 7, opacity: 0.45, className: "adaptive-after" });
    series.push(
      { values: r.transfer_asr.before, color: COLORS.transfer, dash: "3 2", className: "transfer-before" },
      { values: r.transfer_asr.after, color: COLORS.transfer, className: "transfer-after" });
    lineChart($("edit-chart"), { x: K, rule: K[k], width: chartWidth(), height: 120,
      yFormat: d3.format(".0%"), xTitle: "attack strength ε", yTitle: "ASR", series });
    const phase = result.dataset.phase === "preview"
      ? `estimate on ${r.n_images} of ${total} images, measuring all…`
      : r.adaptive_asr ? `${r.n_images} images, ${r.n_sample} in the all-class sample`
      : `${r.n_images} images · measuring the fresh attack…`;
    if (stale) return;  // the status says what is being measured
    status.classList.remove("problem");
    status.innerHTML = `${r.mask.length} deleted · ${phase}<br>` +
      `<span style="color:${COLORS.transfer}">transfer</span> (stored attack), ` +
      `<span style="color:${COLORS.adaptive}">adaptive</span> (fresh attack, the wide pale line); dashed: before`;
  }

  async function update() {
    const { key, masked, maskMode } = store.get();
    list.innerHTML = masked.map((id) =>
      `<li><button type="button" data-id="${esc(id)}" title="restore ${esc(id)}">${esc(id)} ×</button></li>`).join("");
    clear.hidden = masked.length === 0;
    exportButton.hidden = masked.length === 0;
    controller?.abort();
    wanted = tagOf(masked, maskMode);
    if (!key || masked.length === 0) {
      result.hidden = true;
      $("edit-box").hidden = true;
      showBoxes();
      status.textContent = "";
      status.classList.remove("problem");
      last = null;
      document.documentElement.dataset.edit = "idle";
      return;
    }
    if (blocked) {  // deleted neurons in the URL of an analysis this server cannot edit
      last = null;
      result.hidden = $("edit-chart").hidden = true;
      return editProblem(blocked);
    }
    const body = { mask: masked, mode: maskMode };
    const tag = wanted;
    controller = new AbortController();
    const { signal } = controller;
    // The previous mask's numbers stay in view, greyed, until this mask's arrive.
    if (last) show(last.r, last.tag);
    else result.hidden = $("edit-chart").hidden = true;
    status.classList.remove("problem");
    status.textContent = last ? `measuring ${masked.length} deleted…; greyed: the previous deletion's numbers`
      : `measuring ${masked.length} deleted…`;
    $("edit-box").hidden = false;
    showBoxes();
    document.documentElement.dataset.edit = "busy";
    const ask = async (options) => {
      const r = await api.getEdit(key, { ...body, ...options }, signal);
      last = { r, tag };
      show(r, tag);
    };
    try {
      await ask({ adaptive: false, preview: true });
      await ask({ adaptive: false, preview: false });
      // A moment's pause first: a quick next click aborts this before the server starts the
      // slow part (a request the server has started runs to its end; edits run one at a time).
      await new Promise((resolve) => setTimeout(resolve, 250));
      if (signal.aborted) return;
      await ask({ adaptive: true, preview: false });
      document.documentElement.dataset.edit = "ready";
    } catch (e) {
      if (e.name === "AbortError") return;
      editProblem(e.status ? `the server refused the deletion (${e.status}): ${e.message}`
        : `measuring the deletion failed: ${e.message}`);
    }
  }

  // The progress bar and cancel button show only while a search runs.
  function showSearch(job) {
    const running = job !== null;
    for (const id of ["defense-job", "defense-progress", "defense-cancel"]) $(id).hidden = !running;
    $("defense").disabled = running;  // one search at a time from this page
    if (!running) return;
    // A long search creeps at first: a tenth of a percent shows it is moving.
    const p = 100 * job.progress;
    const pct = `${p > 0 && p < 10 ? p.toFixed(1) : Math.round(p)}%`;
    $("defense-progress").value = job.progress;
    $("defense-progress").textContent = pct;  // what a browser without <progress> shows
    $("defense-percent").textContent = job.state === "queued" ? "waiting…" : pct;
    showPicks(job.picks ?? [], false);
  }

  // The greedy picks so far (or all of them once done): listed, and ringed on the graph.
  function showPicks(picks, done) {
    if (!done && picks.join() === store.get().greedy.join()) return;
    $("defense-box").hidden = false;
    showBoxes();
    $("defense-picks").innerHTML = picks.length
      ? `greedy picks${done ? "" : " so far"} (ringed in green): ` + picks.map((id) =>
        `<button type="button" class="neuron" data-id="${esc(id)}">${esc(id)}</button>`).join(" ")
      : (done ? "no pick lowers the attack" : "searching for the first pick…");
    store.set({ greedy: [...picks] });
  }

  function endSearch(state, text) {
    search = null;
    showSearch(null);
    $("defense").disabled = !!blocked;
    $("defense-cancel").disabled = false;
    $("defense-status").textContent = text;
    $("defense-status").classList.toggle("problem", state === "error");
    if (state === "error") {  // in view, whatever the box showed before
      $("defense-box").hidden = false;
      showBoxes();
    }
    document.documentElement.dataset.defense = state;
  }

  async function suggest() {
    const { key, maskMode } = store.get();
    if (!key || search || blocked) return;
    const budget = +$("budget").value || 5;
    $("defense-status").textContent = "searching…";
    $("defense-status").classList.remove("problem");
    document.documentElement.dataset.defense = "busy";
    $("defense-chart").replaceChildren();
    $("defense-box").hidden = false;  // so what comes, an answer or a refusal, is seen
    showBoxes();
    showPicks([], false);
    $("defense").disabled = true;  // a double click would start two searches
    let mine = null, drawn = false;
    try {
      let job = await api.startDefense(key, budget, maskMode);
      if (store.get().key !== key) {  // another analysis opened while this one started
        api.cancelDefense(job.id).catch(() => {});
        return endSearch("cancelled", "");
      }
      mine = search = { id: job.id };
      showSearch(job);
      while (!FINISHED.has(job.state)) {
        await sleep(POLL_MS);
        if (search !== mine) return;  // cancelled, or another analysis opened meanwhile
        job = await api.getDefense(job.id);
        if (search !== mine) return;
        showSearch(job);
        // The suggestion comes first; its baselines follow while the search job goes on.
        if (job.state === "running" && job.result && !drawn) {
          drawn = true;
          drawDefense(job.result);
          document.documentElement.dataset.defense = "suggested";
        }
      }
      if (job.state === "done") {
        endSearch("ready", "");
        drawDefense(job.result);
      } else if (job.state === "cancelled") {
        endSearch("cancelled", "cancelled");
        if (job.result) drawDefense(job.result, true);  // the suggestion came before the stop
      } else {
        endSearch("error", job.error || "the defense search failed");
      }
    } catch (e) {
      if (search !== mine) return;  // the panel has moved on
      endSearch("error", e.status ? `the server refused the defense search (${e.status}): ${e.message}`
        : `the defense search failed: ${e.message}`);
    }
  }

  // Ask the server to stop; the poll sees the search end (it stops between batches of masks).
  async function cancelSearch() {
    if (!search) return;
    $("defense-cancel").disabled = true;
    $("defense-percent").textContent = "cancelling…";
    try {
      await api.cancelDefense(search.id);
    } catch (e) {
      if (search) endSearch("error", e.message);
    }
  }

  function drawDefense(d, cancelled = false) {
    showPicks(d.greedy.length ? d.greedy.at(-1).mask : [], true);
    const svg = d3.select("#defense-chart");
    const width = chartWidth(), height = 170, m = { top: 10, right: 12, bottom: 32, left: 46 };
    svg.attr("width", width).attr("height", height).selectAll("*").remove();
    const curves = [  // every curve starts at the unedited model
      { name: "greedy", color: COLORS.greedy, points: [d.before, ...d.greedy] },
      { name: "emphasized", color: COLORS.emphasized, points: [d.before, ...d.top_emphasized] },
      { name: "random", color: COLORS.random, points: [d.before, ...d.random] },
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
    const last = d.greedy.at(-1);
    const baselines = d.complete
      ? `, <span style="color:${COLORS.emphasized}">top emphasized</span>, ` +
        `<span style="color:${COLORS.random}">random</span> (mean of ${d.random_draws})`
      : "";
    $("defense-status").innerHTML =
      `<span style="color:${COLORS.greedy}">greedy</span>${baselines} · adaptive ASR at ` +
      `ε = ${+d.epsilon.toPrecision(3)} against clean accuracy, ${d.seconds.toFixed(1)} s.` +
      (d.complete ? "" : cancelled ? " Cancelled before the baselines were measured."
        : " <span class=\"pending\">Measuring the baselines (random, top emphasized)…</span>") +
      (d.stopped ? ` Stopped early: ${d.stopped}.` : "") +
      (last ? ` <button type="button" id="defense-apply">delete the ${last.mask.length} greedy picks</button>` : "");
    $("defense-apply")?.addEventListener("click", () => store.set({ masked: [...last.mask] }));
  }

  store.subscribe((state, prev) => {
    if (state.key !== prev.key) {
      last = null;  // another analysis's numbers are not even stale ones
      $("defense-chart").replaceChildren();
      $("defense-status").textContent = "";
      $("defense-box").hidden = true;
      showBoxes();
      if (state.greedy.length) store.set({ greedy: [] });
      if (search) {  // a search for the analysis left behind: stop it rather than wait for it
        api.cancelDefense(search.id).catch(() => {});
        endSearch("cancelled", "");
      }
      warm(state);
    }
    if (state.masked !== prev.masked || state.maskMode !== prev.maskMode ||
        (state.key !== prev.key && state.key)) update();
    else if (state.strengthIndex !== prev.strengthIndex && last && !result.hidden) show(last.r, last.tag);
  });
}
