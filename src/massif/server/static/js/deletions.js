// Deleting neurons: the list of deleted (masked) neurons in the control panel, *restore all*,
// *set to 0* / *benign mean*, *export edited model*, and the requests that measure a mask.
//
// Every change POSTs the mask to /graphs/{key}/edit (the previous requests are aborted), which
// answers clean accuracy and the attack success rate per strength before and after the edit,
// for the stored adversarial images (transfer) and for a fresh attack through the edited model
// (adaptive). It asks three times, so the panel updates at once and then sharpens: a preview
// (the first 250 images, no fresh attack: well under a second on the bundled model), all images
// without the fresh attack, then with it (the slow part). While a new mask is measured the
// previous numbers stay in the results box, greyed, until its own arrive (edit_result.js).
// With any of *check with attacks that know the mask* ticked (the server's checks, /index.json),
// a job on the server then adds them (POST /graphs/{key}/checks): stronger attacks at ε_max
// through the unedited and the edited model (slow: tens to hundreds of passes over the class),
// and a warning where the deletion's gain shrinks under them (gradient masking?). Its percent
// shows in the results box beside a cancel button (Escape cancels too); another deletion
// cancels it.
import * as api from "./api.js";
import { download } from "./download.js";
import { showEditResult } from "./edit_result.js";
import { showBoxes } from "./results.js";
import { esc } from "./store.js";

const $ = (id) => document.getElementById(id);

// `blocked()`: why this analysis cannot be edited here (null: it can); `problem(message)`
// writes a refusal or failure in red in the results box. Answers {update, redraw, reset}.
export function createDeletions(store, { blocked, problem }) {
  const list = $("masked"), clear = $("mask-clear"), exportButton = $("mask-export");
  const result = $("edit-result"), status = $("edit-status"), cancelButton = $("checks-cancel");
  let controller = null;
  let checksJob = null;  // {id} of the checks job running for the mask shown
  let last = null;  // the latest answer, shown again when the strength slider moves
  // Which request numbers answer: the mask and mode, as text; the box greys what answers
  // another request than the one wanted.
  const tagOf = (masked, maskMode) => `${masked.join(",")}|${maskMode}|${checked().join(",")}`;
  let wanted = null;
  const show = (r, tag) => showEditResult(store, r, tag !== wanted);

  clear.addEventListener("click", () => store.set({ masked: [] }));
  for (const radio of document.querySelectorAll("#mask-mode input")) {
    radio.addEventListener("change", () => store.set({ maskMode: radio.value }));
  }
  list.addEventListener("click", (event) => {
    const id = event.target.closest("[data-id]")?.dataset.id;
    if (id) store.set({ masked: store.get().masked.filter((m) => m !== id) });
  });
  exportButton.addEventListener("click", () => exportModel());
  $("checks").addEventListener("change", () => { if (store.get().masked.length) update(); });
  let checkNames = null;  // the checks offered, once the server's info is known
  store.subscribe((state) => {
    const offered = state.info?.checks ?? [];
    const names = offered.map((c) => c.name).join();
    if (names === checkNames) return;
    checkNames = names;
    $("checks").hidden = offered.length === 0 || api.offline;
    $("checks-list").innerHTML = offered.map((c) =>
      `<label class="inline" title="${esc(c.description)}"><input type="checkbox" ` +
      `value="${esc(c.name)}"> ${esc(c.name)}</label>`).join(" ");
  });
  const checked = () => [...document.querySelectorAll("#checks-list input:checked")]
    .map((box) => box.value);

  async function exportModel() {
    const { key, masked, maskMode } = store.get();
    if (!key || masked.length === 0) return;
    exportButton.disabled = true;
    try {
      const blob = await api.getEditedModel(key, { mask: masked, mode: maskMode });
      download(blob, `${key}-edited.pt`);
    } catch (e) {
      problem(`export failed: ${e.message}`);
    } finally {
      exportButton.disabled = !!blocked();
    }
  }

  // Stop the checks job (another deletion, Escape, the cancel button); false when none runs.
  function stopChecks() {
    if (!checksJob) return false;
    const { id } = checksJob;
    checksJob = null;
    cancelButton.hidden = true;
    api.cancelChecks(id).catch(() => {});  // it may have ended meanwhile
    return true;
  }
  cancelButton.addEventListener("click", () => {
    if (!stopChecks()) return;
    controller?.abort();
    status.textContent = "checks cancelled; the numbers above are without them";
    document.documentElement.dataset.edit = "ready";
  });

  // The checks job for `body` (its mask and mode) until it ends or `signal` aborts; its result
  // (an EditResult with `checks`), or null when cancelled.
  async function runChecks(key, body, checks, signal) {
    let job = await api.startChecks(key, { ...body, checks });
    if (signal.aborted) { api.cancelChecks(job.id).catch(() => {}); return null; }
    checksJob = { id: job.id };
    const mine = checksJob;
    cancelButton.hidden = false;
    try {
      while (!["done", "error", "cancelled"].includes(job.state)) {
        status.textContent = `checking with ${checks.join(", ")} (slow)… ` +
          `${Math.round(100 * job.progress)}%`;
        await new Promise((resolve) => setTimeout(resolve, 400));
        if (checksJob !== mine || signal.aborted) return null;
        job = await api.getChecks(job.id);
      }
    } finally {
      if (checksJob === mine) { checksJob = null; cancelButton.hidden = true; }
    }
    if (job.state === "error") throw new Error(job.error);
    return job.state === "done" ? job.result : null;
  }

  async function update() {
    const { key, masked, maskMode } = store.get();
    stopChecks();
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
    if (blocked()) {  // deleted neurons in the URL of an analysis this server cannot edit
      last = null;
      result.hidden = $("edit-chart").hidden = true;
      return problem(blocked());
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
      const checks = checked();
      if (checks.length) {
        const r = await runChecks(key, body, checks, signal);
        if (signal.aborted) return;
        if (!r) {
          status.textContent = "checks cancelled; the numbers above are without them";
        } else {
          last = { r, tag };
          show(r, tag);
        }
      }
      document.documentElement.dataset.edit = "ready";
    } catch (e) {
      if (e.name === "AbortError") return;
      problem(e.status ? `the server refused the deletion (${e.status}): ${e.message}`
        : `measuring the deletion failed: ${e.message}`);
    }
  }

  return {
    update,
    // Escape: cancel the checks job; whether one ran.
    cancel() {
      if (!stopChecks()) return false;
      controller?.abort();
      status.textContent = "checks cancelled; the numbers above are without them";
      document.documentElement.dataset.edit = "ready";
      return true;
    },
    // The slider moved: the same numbers at the new strength.
    redraw() { if (last && !result.hidden) show(last.r, last.tag); },
    // Another analysis opened: the numbers of the one left are not even stale ones.
    reset() { last = null; stopChecks(); },
    // The latest answer (EditResult) for what is deleted now, or null.
    latest: () => (last && last.tag === wanted ? last.r : null),
  };
}
