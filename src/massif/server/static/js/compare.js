// The comparison page (/compare?a=KEY&b=KEY&ka=K&kb=K): two saved analyses, or one at two
// strengths, side by side: attack success and where attacked images cross, then, for one
// model, which neurons are emphasized or suppressed in A only, in both, in B only (docs/web.md).
import { getComparison, getInfo, getPictures } from "./api.js";
import { esc, formatNumber, formatPercent } from "./store.js";

const $ = (id) => document.getElementById(id);
const SIDE_COLORS = { a: "#0b7a75", b: "#9a6b00" };
const GROUPS = ["emphasized", "suppressed"];

function readUrl() {
  const p = new URLSearchParams(location.search);
  const index = (v) => (v != null && /^\d+$/.test(v) ? +v : null);
  return { a: p.get("a"), b: p.get("b"), ka: index(p.get("ka")), kb: index(p.get("kb")) };
}

function writeUrl(view) {
  const p = new URLSearchParams();
  for (const name of ["a", "b", "ka", "kb"]) if (view[name] != null) p.set(name, view[name]);
  history.replaceState(null, "", `/compare?${p}`);
}

function label(s) {
  return `${s.benign} → ${s.target} · ${s.targeted ? "" : "untargeted "}${s.attack} ${formatNumber(s.max_strength)}${s.same_model ? "" : ` · ${s.model}`}`;
}

function asrChart(svgElement, c) {
  const width = 256, height = 164, m = { top: 22, right: 10, bottom: 34, left: 46 };
  const svg = d3.select(svgElement).attr("width", width).attr("height", height);
  svg.selectAll("*").remove();
  const maxX = Math.max(c.a.strengths.at(-1), c.b.strengths.at(-1));
  const x = d3.scaleLinear().domain([0, maxX]).range([m.left, width - m.right]);
  const y = d3.scaleLinear().domain([0, 1]).range([height - m.bottom, m.top]);
  svg.append("g").attr("class", "axis").attr("transform", `translate(0,${height - m.bottom})`).call(d3.axisBottom(x).ticks(5));
  svg.append("g").attr("class", "axis").attr("transform", `translate(${m.left},0)`).call(d3.axisLeft(y).ticks(4, "%"));
  svg.append("text").attr("class", "axis-title").attr("x", width - m.right).attr("y", height - 2)
    .attr("text-anchor", "end").text("attack strength ε →");
  svg.append("text").attr("class", "axis-title").attr("text-anchor", "middle")
    .attr("transform", `translate(9,${(m.top + height - m.bottom) / 2}) rotate(-90)`).text("ASR");
  // A wide and pale under B dashed, so both show where they coincide; the key says which.
  const look = (path, side) => path.attr("fill", "none").attr("stroke", SIDE_COLORS[side])
    .attr("stroke-width", side === "a" ? 5 : 2).attr("stroke-opacity", side === "a" ? 0.45 : 1)
    .attr("stroke-dasharray", side === "a" ? null : "5 3");
  for (const [i, side] of ["a", "b"].entries()) {
    const kx = m.left + 4 + i * 90;
    look(svg.append("path").attr("class", `key ${side}`), side).attr("d", `M${kx},9H${kx + 22}`);
    svg.append("text").attr("class", "key-text").attr("x", kx + 26).attr("y", 12)
      .style("font-size", "10px").text(side.toUpperCase());
  }
  for (const side of ["a", "b"]) {
    const s = c[side];
    const points = s.strengths.map((e, k) => [x(e), y(s.attack_success_rate[k])]);
    look(svg.append("path").attr("class", `asr-line ${side}`), side).attr("d", d3.line()(points));
    svg.append("circle").attr("class", `compared ${side}`).attr("r", 5).attr("fill", "none")
      .attr("stroke", SIDE_COLORS[side]).attr("stroke-width", 2)
      .attr("cx", x(s.strength)).attr("cy", y(s.asr));
  }
}

function crossedChart(svgElement, c) {
  const layers = [...c.layers].reverse();  // the deepest layer on top, as in the graph
  const width = 250, row = 16, m = { top: 4, right: 34, bottom: 4, left: 62 };
  const height = m.top + m.bottom + layers.length * 2 * row / 1.4;
  const svg = d3.select(svgElement).attr("width", width).attr("height", height);
  svg.selectAll("*").remove();
  const band = d3.scaleBand().domain(layers).range([m.top, height - m.bottom]).padding(0.15);
  const x = d3.scaleLinear().domain([0, 1]).range([m.left, width - m.right]);
  for (const [i, side] of ["a", "b"].entries()) {
    const s = c[side];
    if (!s.crossed) continue;
    const value = (lay) => (s.layers.includes(lay) ? s.crossed[s.layers.indexOf(lay)] : 0);
    const g = svg.append("g").attr("class", `crossed ${side}`);
    const y = (lay) => band(lay) + (i * band.bandwidth()) / 2;
    g.selectAll("rect").data(layers).join("rect").attr("x", m.left).attr("y", y)
      .attr("height", band.bandwidth() / 2 - 1).attr("width", (lay) => x(value(lay)) - m.left)
      .attr("fill", SIDE_COLORS[side]).attr("data-layer", (lay) => lay).attr("data-value", value);
    g.selectAll("text").data(layers).join("text").attr("class", "crossed-value")
      .attr("x", (lay) => x(value(lay)) + 3).attr("y", (lay) => y(lay) + band.bandwidth() / 4)
      .attr("dominant-baseline", "middle").style("font-size", "10px").text((lay) => formatPercent(value(lay)));
  }
  svg.append("g").selectAll("text").data(layers).join("text").attr("x", m.left - 6)
    .attr("y", (lay) => band(lay) + band.bandwidth() / 2).attr("text-anchor", "end")
    .attr("dominant-baseline", "middle").style("font-size", "11px").text((lay) => lay);
}

function facts(element, s) {
  element.innerHTML = `
    <dt>clean accuracy</dt><dd>${formatPercent(s.clean_accuracy)}</dd>
    <dt>ASR at ε = ${formatNumber(s.strength)}</dt><dd class="asr">${formatPercent(s.asr)}</dd>
    <dt>divergence</dt><dd class="divergence">${esc(s.divergence_layer ?? "none")}</dd>
    <dt>model</dt><dd>${esc(s.model.name)} <span class="hint">${esc(s.model.fingerprint)}</span></dd>`;
}

function chip(n, group, key, pictures) {
  const src = pictures[key]?.pictures[n.id];
  const vul = (v) => (v == null ? "–" : v.toFixed(2));
  const title = `${n.id}: A ${n.a ?? "not moved"} (vulnerability ${vul(n.vulnerability_a)}), B ${n.b ?? "not moved"} (vulnerability ${vul(n.vulnerability_b)})`;
  const picture = src ? `<img src="${esc(src)}" alt="">` : `<span class="blank"></span>`;
  return `<a class="chip ${group}" data-id="${esc(n.id)}" href="/graphs/${esc(key)}/nodes/${esc(n.id)}" title="${esc(title)}">${picture}${esc(n.id.split(":")[1])}</a>`;
}

function neuronTable(c, pictures) {
  const body = $("neuron-table").querySelector("tbody");
  $("models-differ").hidden = c.same_model;
  $("neuron-table").hidden = !c.same_model;
  $("neuron-hint").hidden = !c.same_model;
  if (!c.same_model) {
    $("models-differ").textContent = `The models differ (${c.a.model.name} ${c.a.model.fingerprint}, ${c.b.model.name} ${c.b.model.fingerprint}): their neurons are different units, so only the attacks and where images cross are compared.`;
    body.replaceChildren();
    return;
  }
  const rows = [...c.layers].reverse().map((layer) => {
    const cells = GROUPS.flatMap((group) => {
      const here = c.neurons.filter((n) => n.layer === layer && (n.a === group || n.b === group));
      const parts = { a: here.filter((n) => n.a === group && n.b !== group),
                      both: here.filter((n) => n.a === group && n.b === group),
                      b: here.filter((n) => n.b === group && n.a !== group) };
      return ["a", "both", "b"].map((part) => {
        const key = part === "b" ? c.b.key : c.a.key;
        return `<td class="count-${parts[part].length}" data-group="${group}" data-part="${part}"><div class="chips">${
          parts[part].map((n) => chip(n, group, key, pictures)).join("")}</div></td>`;
      });
    });
    return `<tr data-layer="${esc(layer)}"><td class="layer">${esc(layer)}</td>${cells.join("")}</tr>`;
  });
  body.innerHTML = rows.join("");
}

async function main() {
  const info = await getInfo();
  const view = readUrl();
  const keys = info.analyses.map((s) => s.key);
  // Two saved analyses with the same label (an old format's and a new one's): add their keys.
  const counts = new Map();
  for (const s of info.analyses) counts.set(label(s), (counts.get(label(s)) ?? 0) + 1);
  const name = (s) => (counts.get(label(s)) > 1 ? `${label(s)} · ${s.key}` : label(s));
  // No choice is shown as made until a comparison is: an unknown key in the URL leaves the
  // pickers on "choose…" beside the message, never on another analysis.
  for (const side of ["a", "b"]) {
    $(`pick-${side}`).replaceChildren(new Option("choose an analysis…", ""),
      ...info.analyses.map((s) => new Option(name(s), s.key)));
    $(`pick-${side}`).value = "";
  }
  if (!view.a) view.a = keys[0];
  if (!view.a) { showError("no saved analyses in this workspace yet: analyse a pair on the main page first"); return; }
  let first = !view.b;
  if (!view.b) view.b = view.a;
  const pictures = {};

  async function show() {
    let c;
    try {
      c = await getComparison(Object.fromEntries(Object.entries(view).filter(([, v]) => v != null)));
    } catch (e) {
      for (const side of ["a", "b"]) $(`pick-${side}`).value = keys.includes(view[side]) ? view[side] : "";
      showError(e.message);
      return;
    }
    if (first && view.a === view.b && view.ka == null && view.kb == null) {
      first = false;  // one analysis alone: compare its largest strength with a middle one
      view.kb = Math.floor((c.b.strengths.length - 1) / 2);
      return show();
    }
    first = false;
    $("compare-error").hidden = true;
    writeUrl(view);
    for (const side of ["a", "b"]) {
      const s = c[side];
      if (!keys.includes(s.key)) $(`pick-${side}`).append(new Option(s.key, s.key));
      $(`pick-${side}`).value = s.key;
      $(`strength-${side}`).replaceChildren(...s.strengths.map((e, k) => new Option(`ε = ${formatNumber(e)}`, k)));
      $(`strength-${side}`).value = String(s.strength_index);
      $(`open-${side}`).href = `/graphs/${s.key}`;
      facts($(`side-${side}`).querySelector(".facts"), s);
      if (!pictures[s.key]) pictures[s.key] = await getPictures(s.key).catch(() => ({ pictures: {} }));
    }
    // "A: label | B: label": the labels hold " · " themselves, so a bar of its own between.
    $("title").innerHTML = `A: ${esc(c.a.label)}<span class="sep" aria-hidden="true"> | </span>B: ${esc(c.b.label)}`;
    asrChart($("asr-compare"), c);
    crossedChart($("crossed-compare"), c);
    neuronTable(c, pictures);
    document.body.dataset.compared = `${c.a.key}@${c.a.strength_index}|${c.b.key}@${c.b.strength_index}`;
  }

  for (const side of ["a", "b"]) {
    $(`pick-${side}`).addEventListener("change", (e) => {
      if (!e.target.value) return;  // "choose an analysis…"
      view[side] = e.target.value; view[`k${side}`] = null; show();
    });
    $(`strength-${side}`).addEventListener("change", (e) => { view[`k${side}`] = +e.target.value; show(); });
  }
  await show();
}

function showError(message) {
  $("compare-error").textContent = message;
  $("compare-error").hidden = false;
  document.body.dataset.compared = "error";
}

main().catch((e) => showError(e.message));
