// The control panel (paper, Figure 3A): benign and target class (searchable when there are
// many), attack, targeted, maximum strength. A pair already analysed is shown at once; a new
// one is computed on the server, with a progress bar fed by polling its status, the time spent
// and an estimate of the time left (both ticking every second), and a cancel button (Escape
// too: cancelJob); meanwhile a banner over the graph names the whole request computing (pair,
// targeting, attack, strength) and the pair still drawn. When a job ends the saved analyses'
// list is read again, so a new analysis is listed at once. A choice
// that cannot be right (an unknown class, a strength that is not a positive number) is named
// in a plain message and starts nothing.
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

// The attack choice (`pgd-l2`) of a graph's attack record (`name` pgd, `norm` l2): the server's
// registry says which (info.attack_choices); the page keeps no list of attacks of its own.
export function attackChoice(graph, info) {
  const found = (info.attack_choices ?? []).find((a) =>
    a.name === graph.attack.name && a.norm === graph.attack.norm);
  return found ? found.label : graph.attack.name;
}

// The request a URL or the form asks for, checked against the server's classes and attacks:
// {request, problems}; classes may be given by index or (case-insensitive) name.
export function checkRequest(req, info) {
  const problems = [];
  const request = { ...req };
  for (const field of ["benign", "target"]) {
    const text = String(req[field] ?? "").trim();
    const found = (/^\d+$/.test(text) && info.classes.find((c) => String(c.index) === text)) ||
      info.classes.find((c) => c.name.toLowerCase() === text.toLowerCase());
    if (found) request[field] = String(found.index);
    else {
      problems.push(`There is no ${field} class "${text.slice(0, 40)}" in this model: choose one of ` +
                    `its ${info.classes.length} classes from the list.`);
      request[field] = String(info.default_request[field]);
    }
  }
  if (!info.attacks.includes(req.attack)) {
    problems.push(`There is no attack "${String(req.attack).slice(0, 40)}": choose one of ${info.attacks.join(", ")}.`);
    request.attack = info.default_request.attack;
  }
  const fallback = info.default_max_strength[request.attack];
  const strength = req.max_strength == null || req.max_strength === "" ? fallback : Number(req.max_strength);
  if (!Number.isFinite(strength) || strength < 1e-6 || strength > 1e4) {
    problems.push(strengthProblem(fallback, `, not "${String(req.max_strength).slice(0, 40)}"`));
    request.max_strength = fallback;
  } else request.max_strength = strength;
  if (![undefined, true, false, "true", "false"].includes(req.targeted)) {
    problems.push(`targeted must be true or false, not "${String(req.targeted).slice(0, 20)}".`);
    request.targeted = true;
  }
  if (!problems.length && request.benign === request.target) problems.push("The benign and target classes must differ.");
  return { request, problems };
}

// `given`: what was given instead, as the end of the sentence.
function strengthProblem(example, given) {
  return `The maximum strength must be a number from 0.000001 to 10000 (for example ${example})${given}.`;
}

export function createControls(store, { loadGraph }) {
  const form = $("pair"), benign = $("benign"), target = $("target"), attack = $("attack");
  const targeted = $("targeted"), maxStrength = $("max-strength"), saved = $("saved");
  let polling = null;
  let running = null;  // the analysis job followed: {key, since, p0, progress, stage, cancelling}
  let ticker = null;  // rewrites the job's line every second while one runs

  function request() {
    return { benign: benign.value, target: target.value, attack: attack.value,
             targeted: targeted.checked, max_strength: maxStrength.value };
  }

  // The form is checked by checkRequest, not by the browser (the form has novalidate), so any
  // refused value gets the page's own message; an empty strength field (or text a number field
  // cannot read, which it reports as empty) is refused here, where a URL's would mean "default".
  function formProblems(params) {
    const { problems } = checkRequest(params, store.get().info);
    if (maxStrength.value === "") {
      const example = store.get().info.default_max_strength[attack.value];
      problems.unshift(strengthProblem(example, maxStrength.validity.badInput
        ? "; the field does not hold a number" : "; the field is empty"));
    }
    return problems;
  }

  function showError(message) {
    $("error").hidden = !message;
    $("error").textContent = message ?? "";
  }

  // The whole request the form asks for, by name (for the banner): pair, targeting, attack and
  // largest strength.
  const requestName = () => `${benign.selectedOptions[0]?.text ?? "?"} → ${target.selectedOptions[0]?.text ?? "?"}` +
    ` · ${targeted.checked ? "targeted" : "untargeted"} ${attack.value.toUpperCase()} up to ε = ${maxStrength.value}`;
  const STAGES = { means: "class means", profile: "profiling neurons", edges: "influence edges",
                   visualize: "feature visualizations", examples: "dataset examples" };

  // "1 min 05 s" or "42 s".
  function duration(seconds) {
    const s = Math.max(0, Math.round(seconds));
    return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
  }

  // The job's line: stage, percent, time so far and (once the progress has moved enough to
  // tell) the time left at the pace seen so far. Rewritten every second, so it always moves.
  function jobText() {
    if (!running) return;
    const seconds = (performance.now() - running.since) / 1000;
    const p = running.progress, moved = p - running.p0;
    const left = moved > 0.01 && seconds > 2 ? ` · about ${duration(seconds / moved * (1 - p))} left` : "";
    const what = running.cancelling ? "cancelling…" : running.state === "queued"
      ? "waiting for the server's other analyses" : `${STAGES[running.stage] ?? "starting"} ${Math.round(100 * p)}%`;
    $("job-text").textContent = `${what} · ${duration(seconds)} so far${running.cancelling ? "" : left}`;
    $("job-text").dataset.seconds = String(Math.floor(seconds));
  }

  function showJob(status) {
    const on = status && (status.state === "queued" || status.state === "running");
    $("job").hidden = !on;
    const { graph, key } = store.get();
    const pending = on && status.key !== key;
    $("pending").hidden = !pending;
    if (pending) {
      $("pending").textContent = `Computing ${requestName()} (${Math.round(100 * status.progress)}%)… ` +
        (graph ? `The graph below is still ${graph.benign.name} → ${graph.target.name}.` : "");
    }
    document.documentElement.dataset.job = status ? status.state : "";
    if (!on) {
      const ended = running !== null;
      running = null;
      clearInterval(ticker);
      ticker = null;
      if (ended) refreshSaved();
      return;
    }
    if (running?.key !== status.key) {
      running = { key: status.key, since: performance.now(), p0: status.progress, cancelling: false };
    }
    if (status.state === "queued") running.p0 = status.progress;  // the pace counts from the start
    Object.assign(running, { progress: status.progress, stage: status.stage, state: status.state });
    $("progress").value = status.progress;
    $("job-cancel").disabled = running.cancelling;
    jobText();
    ticker ??= setInterval(jobText, 1000);
  }

  // Stop the analysis this page follows (the cancel button, Escape); false when none runs.
  // A cancel the server refuses (the job has just ended: 409) is said under the form.
  function cancelJob() {
    if (!running || running.cancelling) return false;
    const { key } = running;
    running.cancelling = true;
    $("job-cancel").disabled = true;
    jobText();
    api.cancelAnalysis(key).catch((e) => {
      if (running?.key === key) running.cancelling = false;
      showError(`cancel: ${e.message}`);
    });
    return true;
  }
  $("job-cancel").addEventListener("click", () => cancelJob());

  // The saved analyses' list, read again from the server (a job has ended).
  async function refreshSaved() {
    if (api.offline) return;
    try {
      const info = await api.getInfo();
      store.set({ info: { ...store.get().info, analyses: info.analyses } });
      fillSaved(info.analyses);
    } catch {
      // the list stays as it was; the next job's end reads it again
    }
  }

  function fillSaved(analyses) {
    const chosen = saved.value || store.get().key || "";
    saved.replaceChildren(new Option("—", ""), ...analyses.map((a) =>
      new Option(`${a.benign} → ${a.target} (${a.targeted ? "" : "untargeted "}${a.attack} ${a.max_strength})` +
                 (a.same_model ? "" : ` [${a.model}]`), a.key)));
    saved.value = analyses.some((a) => a.key === chosen) ? chosen : "";
    saved.dataset.count = String(analyses.length);
  }

  async function follow(status) {
    clearTimeout(polling);
    showJob(status);
    const missing = status.state === "cancelled" || status.state === "missing";
    $("analyze").textContent = missing ? "Analyze (not computed yet)"
      : status.state === "damaged" ? "Analyze (computes it anew)" : "Show";
    if (status.state === "done") return loadGraph(status.key);
    if (status.state === "error") return showError(`analysis failed: ${status.error}`);
    if (status.state === "damaged") return showError(status.error);  // says how to redo it
    if (missing) {
      if (status.state === "cancelled") showError("This analysis was cancelled; Analyze starts it again.");
      return;
    }
    polling = setTimeout(async () => {
      try { follow(await api.getStatus(status.key)); } catch (e) { showError(e.message); }
    }, 300);
  }

  // Look the current choice up without starting anything; `start` computes it when missing.
  // The button's label changes only with the answer (follow): changed as the strength field
  // loses focus to a click on it, it would shrink from under the pointer and lose the click.
  // Only the latest question's answer counts: picking a class twice quickly, or a saved
  // analysis while a lookup is on its way, must not let an older answer relabel the button.
  let asked = 0;
  async function choose(start) {
    const mine = ++asked;
    showError(null);
    const params = request();
    const problems = formProblems(params);
    if (problems.length) { showJob(null); return showError(problems.join(" ")); }
    try {
      const status = start ? await api.startAnalysis({ ...params, max_strength: +params.max_strength })
        : await api.findAnalysis(params);
      if (mine !== asked) return;
      await follow(status);
    } catch (e) { if (mine === asked) showError(e.message); }
  }

  function setup(info) {
    const classes = info.classes;
    for (const [select, filter] of [[benign, $("benign-filter")], [target, $("target-filter")]]) {
      fillClasses(select, classes);
      filter.hidden = classes.length <= SEARCHABLE;
      filter.placeholder = `search ${classes.length} classes`;
      filter.addEventListener("input", () => fillClasses(select, classes, filter.value));
    }
    attack.replaceChildren(...info.attacks.map((a) => {
      const option = new Option(a, a);
      const about = (info.attack_choices ?? []).find((c) => c.label === a);
      if (about) option.title = `${about.description}; ${about.strength}`;
      return option;
    }));
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
    if (info.report) {  // a standalone report shows its one analysis: the pair is fixed
      for (const el of [benign, target, attack, targeted, maxStrength]) el.disabled = true;
    }
    fillSaved(info.analyses);
    saved.addEventListener("change", () => { if (saved.value) loadGraph(saved.value); });
  }

  // Reflect a request (from the URL, a default or a loaded graph) in the form; the button's
  // label goes back to Show with it (what it said was about the form's previous pair).
  function show(req) {
    asked += 1;  // a lookup still on its way was about the form's previous pair
    $("analyze").textContent = "Show";
    for (const [select, value] of [[benign, req.benign], [target, req.target]]) {
      const filter = $(`${select.id}-filter`);
      filter.value = "";
      fillClasses(select, store.get().info.classes, "", String(value));
    }
    attack.value = req.attack;
    targeted.checked = req.targeted !== false && req.targeted !== "false";
    maxStrength.value = req.max_strength ?? store.get().info.default_max_strength[req.attack];
  }

  return { setup, show, choose, follow, showError, showJob, cancelJob };
}
