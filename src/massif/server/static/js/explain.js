// What the page's numbers mean: the attack's strength scale, and small ⓘ buttons that explain a
// number's scale or unit. An ⓘ shows its text on hover (its title) and, clicked or pressed with
// Enter or space (Tab reaches it), in a popover under it that Escape or a click elsewhere closes.
// Panels put infoButton(name, label) into their HTML and setInfo(root, name, text) when the text
// is known (it may change with the neuron or the strength).

// The analysis's strength scale, from the server's attack registry (GET /index.json, or the
// report's copy of it): `symbol` (ε, or c for CW, whose strengths are its constant), `unit`
// (the norm, "L2" or "L∞", or "CW's c") and `text` (what a strength is, for a sentence).
export function strengthScale(graph, info) {
  const spec = (info?.attack_choices ?? []).find((a) =>
    a.name === graph.attack.name && a.norm === graph.attack.norm);
  const norm = { l2: "L2", linf: "L∞" }[graph.attack.norm] ?? graph.attack.norm;
  const isC = !!spec && spec.strength.startsWith("c:");
  const what = spec ? spec.strength.replace(/^[εc]: /, "") : `the attack's ${norm} size`;
  return {
    symbol: isC ? "c" : "ε", unit: isC ? "CW's c" : norm, isC,
    text: isC ? `${what}; not a size: the change each image gets is what the optimisation finds`
      : `${what}, on images whose pixels are in [0, 1]`,
  };
}

// The importance's unit: attribution importance is a first-order share of a class's logit;
// Summit's votes are a share of the images.
export function importanceUnit(graph) {
  return graph.params?.importance === "votes"
    ? { short: "votes", inline: "share of votes", text: "the share of the class's images whose top activations hold " +
        "the neuron (Summit's votes, 0 to 1)" }
    : { short: "logit", inline: "logit units", text: "activation × gradient of the class's logit, summed over " +
        "positions, kept where positive and averaged over the class's images: how much of the " +
        "logit the neuron accounts for, to first order, in logit units" };
}

// An ⓘ button and its popover, as HTML; `name` is unique on the page, `label` says what it
// explains to a screen reader ("what vulnerability means").
export function infoButton(name, label) {
  return `<button type="button" class="info" data-info="${name}" popovertarget="info-${name}" ` +
    `aria-label="${label}">i</button><span popover id="info-${name}" class="info-pop" ` +
    `role="note"></span>`;
}

// Set the text of the ⓘ named `name` under `root` (its title and its popover).
export function setInfo(root, name, text) {
  const button = root.querySelector(`button.info[data-info="${name}"]`);
  if (!button) return;
  if (button.title !== text) button.title = text;
  const pop = document.getElementById(`info-${name}`);
  if (pop && pop.textContent !== text) pop.textContent = text;
}

// A popover opens under its button (the page centres one otherwise). beforetoggle does not
// bubble, so the document listens in the capture phase.
document.addEventListener("beforetoggle", (event) => {
  const pop = event.target;
  if (event.newState !== "open" || !pop.classList?.contains("info-pop")) return;
  const button = document.querySelector(`[popovertarget="${pop.id}"]`);
  if (!button) return;
  const r = button.getBoundingClientRect();
  pop.style.top = `${Math.min(r.bottom + 3, innerHeight - 40)}px`;
  pop.style.left = `${Math.max(4, Math.min(r.left - 120, innerWidth - 284))}px`;
}, true);

// Escape closes an open ⓘ and nothing else: the page's Escape (which cancels a running job)
// sees the key as taken.
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape") return;
  const open = document.querySelector(".info-pop:popover-open");
  if (!open) return;
  open.hidePopover();
  event.preventDefault();
}, true);
