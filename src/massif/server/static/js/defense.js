// Suggest a defense: the budget form and the search, a job on the server (seconds to minutes).
//
// While it runs: its progress with a cancel button in the control panel, and in the results box
// the greedy picks as the search finds them (listed, and ringed in green on the graph). Its
// result (DefenseResult) is drawn by the views in RESULT_VIEWS: first the suggestion alone while
// its baselines are measured, then the whole result.
import * as api from "./api.js";
import { DEFENSE_COLORS as COLORS, drawDefenseChart } from "./defense_chart.js";
import { clearDefenseFront, drawDefenseFront } from "./defense_front.js";
import { chartWidth, showBoxes } from "./results.js";
import { esc } from "./store.js";

const $ = (id) => document.getElementById(id);
const POLL_MS = 300;  // how often a running defense search is asked for its progress
const FINISHED = new Set(["done", "error", "cancelled"]);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// The views of a defense result, in the results box's #defense-box. Each has draw(result,
// {cancelled}), called when the suggestion arrives and again with the baselines, and clear(),
// called when a search starts or another analysis opens. A new view (a chart module of its
// own, with an element of its own in #defense-box in index.html) is one entry here.
const RESULT_VIEWS = [
  { draw: (d) => drawDefenseChart($("defense-chart"), d, chartWidth()),
    clear: () => $("defense-chart").replaceChildren() },
  { draw: (d) => drawDefenseFront($("defense-front"), d, chartWidth()),
    clear: () => clearDefenseFront($("defense-front")) },
];

// `blocked()`: why this analysis cannot be edited here (null: it can). Answers {reset}.
export function createDefense(store, { blocked }) {
  let search = null;  // the running defense search: {id, since, cancelling}
  let result = null;  // the latest result shown

  $("defense-form").addEventListener("submit", (event) => {
    event.preventDefault();
    suggest();
  });
  $("defense-cancel").addEventListener("click", () => cancelSearch());
  $("defense-picks").addEventListener("click", (event) => {
    const id = event.target.closest("button.neuron")?.dataset.id;
    if (id) store.set({ pins: [id] });
  });

  // The progress bar and cancel button show only while a search runs.
  function showSearch(job) {
    const running = job !== null;
    for (const id of ["defense-job", "defense-progress", "defense-cancel"]) $(id).hidden = !running;
    $("defense").disabled = running;  // one search at a time from this page
    if (!running) return;
    // A long search creeps at first: a tenth of a percent shows it is moving. The time so far
    // and, once the progress tells, the time left at the pace seen so far.
    const p = 100 * job.progress;
    const pct = `${p > 0 && p < 10 ? p.toFixed(1) : Math.round(p)}%`;
    $("defense-progress").value = job.progress;
    $("defense-progress").textContent = pct;  // what a browser without <progress> shows
    const seconds = search ? (performance.now() - search.since) / 1000 : 0;
    const left = job.progress > 0.02 && seconds > 2
      ? `, about ${Math.round(seconds / job.progress * (1 - job.progress))} s left` : "";
    if (!search?.cancelling) {  // "cancelling…" stays until the search ends
      $("defense-percent").textContent = job.state === "queued" ? "waiting…"
        : `${pct} · ${Math.round(seconds)} s so far${left}`;
    }
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
    $("defense").disabled = !!blocked();
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
    const { key, maskMode, masked } = store.get();
    if (!key || search || blocked()) return;
    const budget = +$("budget").value || 5;
    $("defense-status").textContent = "searching…";
    $("defense-status").classList.remove("problem");
    document.documentElement.dataset.defense = "busy";
    for (const view of RESULT_VIEWS) view.clear();
    $("defense-box").hidden = false;  // so what comes, an answer or a refusal, is seen
    showBoxes();
    showPicks([], false);
    $("defense").disabled = true;  // a double click would start two searches
    let mine = null, drawn = false;
    try {
      let job = await api.startDefense(key, budget, maskMode, masked);  // from the deletions
      if (store.get().key !== key) {  // another analysis opened while this one started
        api.cancelDefense(job.id).catch(() => {});
        return endSearch("cancelled", "");
      }
      mine = search = { id: job.id, since: performance.now() };
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
          showResult(job.result);
          document.documentElement.dataset.defense = "suggested";
        }
      }
      if (job.state === "done") {
        endSearch("ready", "");
        showResult(job.result);
      } else if (job.state === "cancelled") {
        endSearch("cancelled", "cancelled");
        if (job.result) showResult(job.result, true);  // the suggestion came before the stop
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
    search.cancelling = true;
    $("defense-cancel").disabled = true;
    $("defense-percent").textContent = "cancelling…";
    try {
      await api.cancelDefense(search.id);
    } catch (e) {
      // 409: it ended meanwhile, and the poll shows how (with its result); else a failure
      if (search && e.status !== 409) endSearch("error", e.message);
    }
  }

  // A result: the picks, every view in RESULT_VIEWS, and the line under them (what is drawn,
  // how long it took, a button that deletes the picks).
  function showResult(d, cancelled = false) {
    showPicks(d.greedy.length ? d.greedy.at(-1).mask : [], true);
    result = d;
    for (const view of RESULT_VIEWS) view.draw(d, { cancelled });
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

  return {
    // The latest result shown (DefenseResult), or null: the export menu's numbers.
    latest: () => result,
    // Stop the search this page runs (Escape); false when none runs.
    cancel() {
      if (!search || search.cancelling) return false;
      cancelSearch();
      return true;
    },
    // Another analysis opened: clear the box, and stop a search for the analysis left behind
    // rather than wait for it.
    reset() {
      result = null;
      for (const view of RESULT_VIEWS) view.clear();
      $("defense-status").textContent = "";
      $("defense-box").hidden = true;
      showBoxes();
      if (store.get().greedy.length) store.set({ greedy: [] });
      if (search) {
        api.cancelDefense(search.id).catch(() => {});
        endSearch("cancelled", "");
      }
    },
  };
}
