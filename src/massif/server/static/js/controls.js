// The control panel (paper, Figure 3A): benign and target class (searchable when there are
// many), attack, targeted, maximum strength. A pair already analysed is shown at once; a new
// one is computed on the server, with a progress bar fed by polling its status.
import * as api from "./api.js";

const $ = (id) => document.getElementById(id);
const SEARCHABLE = 30;  // show a search box above the class lists past this many classes

function fillClasses(select, classes, filterText = "", keep = null) {
  const words = filterText.trim().toLowerCase();
  const chosen = keep ?? select.value;
  const shown = classes.filter((c) => !words || c.name.toLowerCase().includes(words) ||
    String(c.index) === words || String(c.index) === chosen);
  select.replaceChildren(...shown.map((c) => new Option(`${c.name}`, String(c.index))));
  if (shown.some((c) => String(c.index) === chosen)) select.value = chosen;
}

export function createControls(store, { loadGraph }) {
  const form = $("pair"), benign = $("benign"), target = $("target"), attack = $("attack");
  const targeted = $("targeted"), maxStrength = $("max-strength"), saved = $("saved");
  let polling = null;

  function request() {
    return { benign: benign.value, target: target.value, attack: attack.value,
             targeted: targeted.checked, max_strength: maxStrength.value };
  }

  function showError(message) {
    $("error").hidden = !message;
    $("error").textContent = message ?? "";
  }

  function showJob(status) {
    const running = status && (status.state === "queued" || status.state === "running");
    $("job").hidden = !running;
    document.documentElement.dataset.job = status ? status.state : "";
    if (!running) return;
    $("progress").value = status.progress;
    const stage = { profile: "profiling neurons", edges: "influence edges",
                    visualize: "feature visualizations", examples: "dataset examples" }[status.stage] ?? "queued";
    $("job-text").textContent = `${stage} ${Math.round(100 * status.progress)}% (computing on the server)`;
  }

  async function follow(status) {
    clearTimeout(polling);
    showJob(status);
    if (status.state === "done") return loadGraph(status.key);
    if (status.state === "error") return showError(`analysis failed: ${status.error}`);
    if (status.state === "missing") {
      $("analyze").textContent = "Analyze (not computed yet)";
      return;
    }
    polling = setTimeout(async () => {
      try { follow(await api.getStatus(status.key)); } catch (e) { showError(e.message); }
    }, 300);
  }

  // Look the current choice up without starting anything; `start` computes it when missing.
  async function choose(start) {
    showError(null);
    $("analyze").textContent = "Show";
    const params = request();
    if (params.benign === params.target) return showError("benign and target must differ");
    try {
      const status = start ? await api.startAnalysis({ ...params, max_strength: +params.max_strength })
        : await api.findAnalysis(params);
      await follow(status);
    } catch (e) { showError(e.message); }
  }

  function setup(info) {
    const classes = info.classes;
    for (const [select, filter] of [[benign, $("benign-filter")], [target, $("target-filter")]]) {
      fillClasses(select, classes);
      filter.hidden = classes.length <= SEARCHABLE;
      filter.placeholder = `search ${classes.length} classes`;
      filter.addEventListener("input", () => fillClasses(select, classes, filter.value));
    }
    attack.replaceChildren(...info.attacks.map((a) => new Option(a, a)));
    attack.addEventListener("change", () => {
      maxStrength.value = info.default_max_strength[attack.value];
      choose(false);
    });
    for (const el of [benign, target, targeted, maxStrength]) el.addEventListener("change", () => choose(false));
    form.addEventListener("submit", (event) => { event.preventDefault(); choose(true); });
    if (!info.can_analyze) {
      $("analyze").disabled = true;
      showError(info.why_not);
    }
    saved.replaceChildren(new Option("—", ""), ...info.analyses.map((a) =>
      new Option(`${a.benign} → ${a.target} (${a.targeted ? "" : "untargeted "}${a.attack} ${a.max_strength})` +
                 (a.same_model ? "" : ` [${a.model}]`), a.key)));
    saved.addEventListener("change", () => { if (saved.value) loadGraph(saved.value); });
  }

  // Reflect a request (from the URL, a default or a loaded graph) in the form.
  function show(req) {
    for (const [select, value] of [[benign, req.benign], [target, req.target]]) {
      const filter = $(`${select.id}-filter`);
      filter.value = "";
      fillClasses(select, store.get().info.classes, "", String(value));
    }
    attack.value = req.attack;
    targeted.checked = req.targeted !== false && req.targeted !== "false";
    maxStrength.value = req.max_strength ?? store.get().info.default_max_strength[req.attack];
  }

  return { setup, show, choose, follow, showError };
}
