// The edit panel: delete (mask) neurons and watch the attack change (the `edit` stage).
//
// With "click deletes neurons" on, a click on a node adds it to the mask or takes it out (the
// graph view marks masked nodes); otherwise a click pins the node as usual. The panel's parts:
//   deletions.js     the deleted neurons' list, restore, mode, export, and the requests that
//                    measure a mask; edit_result.js draws their numbers in the results box
//   defense.js       "Suggest a defense": the search job and its views (defense_chart.js)
//   curves.js        "Deletion curves": the saved ones, or a job that computes them
//   results.js       the results box at the top of the right-hand panel, in view whatever the
//                    window
// This module says whether the analysis can be edited here: one the server cannot edit (made
// with another model, or a server without its data) has the controls disabled with the reason
// beside them; any other refusal or failure of an edit or defense request is written in red in
// the results box, which then shows.
import * as api from "./api.js";
import { createCurves } from "./curves.js";
import { createDefense } from "./defense.js";
import { createDeletions } from "./deletions.js";
import { showBoxes } from "./results.js";

const $ = (id) => document.getElementById(id);

export function createEdit(store) {
  const toggle = $("edit-mode"), status = $("edit-status");
  let blocked = null;  // why this analysis cannot be edited here (null: it can)

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
    curves?.enable();
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

  const deletions = createDeletions(store, { blocked: () => blocked, problem: editProblem });
  const defense = createDefense(store, { blocked: () => blocked });
  const curves = createCurves(store, { blocked: () => blocked });

  store.subscribe((state, prev) => {
    if (state.key !== prev.key) {
      deletions.reset();
      defense.reset();
      curves.reset();
      warm(state);
    }
    if (state.masked !== prev.masked || state.maskMode !== prev.maskMode ||
        (state.key !== prev.key && state.key)) deletions.update();
    else if (state.strengthIndex !== prev.strengthIndex) deletions.redraw();
  });
  return { deletions, defense, curves };
}
