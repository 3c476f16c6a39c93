// The header's neuron tools: the pinned neurons (each chip unpins one) and the find box.
//
// The header is one line of a fixed height (the graph is laid out again whenever its box
// changes size), so the chips never wrap it: they show inline while they fit, two at most, and
// otherwise a button ("4 pinned ▾") opens them all in a list below it (a popover, so nothing
// clips it), where each still unpins alone. The find box takes an id as the URL does
// (`mixed4a:013` is mixed4a:13, any case) and says what is wrong right under itself. The
// analysis's title (main.js writes it) gets the strength's scale in its hover title.
import { strengthScale } from "./explain.js";
import { esc, normalId } from "./store.js";

const $ = (id) => document.getElementById(id);
const INLINE = 2;  // at most this many chips inline, and only while they fit

export function createHeader(store, graphView) {
  const box = $("pins-box"), list = $("pins"), toggle = $("pins-toggle");
  const find = $("find"), findError = $("find-error");

  function showPins() {
    const { pins } = store.get();
    box.hidden = pins.length === 0;
    list.innerHTML = pins.map((id) =>
      `<li><button type="button" data-id="${esc(id)}" title="unpin ${esc(id)}">${esc(id)} ×</button></li>`).join("");
    let many = pins.length > INLINE;
    if (!many) {  // inline, unless the chips do not fit beside the title
      if (list.hasAttribute("popover")) { if (list.matches(":popover-open")) list.hidePopover(); list.removeAttribute("popover"); }
      const title = $("title");  // the chips give way to the whole title
      many = list.scrollWidth > list.clientWidth + 1 || title.scrollWidth > title.clientWidth + 1;
    }
    if (many && !list.hasAttribute("popover")) list.setAttribute("popover", "");
    toggle.hidden = !many;
    toggle.textContent = `${pins.length} ▾`;
    box.classList.toggle("many", many);
  }

  // The list opens under its button (placed here: a popover is centred on the window otherwise).
  list.addEventListener("beforetoggle", (event) => {
    if (event.newState !== "open") return;
    const r = toggle.getBoundingClientRect();
    list.style.top = `${r.bottom + 2}px`;
    list.style.left = `${Math.max(4, Math.min(r.left, innerWidth - 220))}px`;
  });
  list.addEventListener("click", (event) => {
    const id = event.target.closest("[data-id]")?.dataset.id;
    if (id) store.set({ pins: store.get().pins.filter((p) => p !== id) });
  });
  $("unpin").addEventListener("click", () => store.set({ pins: [] }));

  // A message right under the find box (fixed, so the header's one line does not clip it).
  function findProblem(text) {
    findError.hidden = !text;
    findError.textContent = text ?? "";
    if (!text) return;
    const r = find.getBoundingClientRect();
    findError.style.top = `${r.bottom + 3}px`;
    findError.style.right = `${Math.max(4, innerWidth - r.right)}px`;
  }

  find.addEventListener("keydown", (event) => {
    if (event.key === "Escape") return findProblem(null);
    if (event.key !== "Enter") return;
    event.preventDefault();
    const { graph, pins } = store.get();
    const text = find.value.trim();
    if (!graph || !text) return findProblem(null);
    const id = normalId(text);
    const node = graph.nodes.find((n) => n.id === id) ??
      graph.nodes.find((n) => n.id.toLowerCase() === id.toLowerCase());
    if (!node) {
      return findProblem(`No neuron ${text.slice(0, 60)} in this analysis: give layer:channel, ` +
                         `e.g. ${graph.nodes[0]?.id}.`);
    }
    findProblem(null);
    store.set({ pins: event.shiftKey ? [...new Set([...pins, node.id])] : [node.id] });
    graphView.reveal(node.id);
    find.value = "";
  });
  find.addEventListener("input", () => findProblem(null));
  find.addEventListener("blur", () => findProblem(null));

  window.addEventListener("resize", () => { showPins(); findProblem(null); });
  // The title's ε (or CW's c) is on the attack's scale: say which, on hover.
  function explainTitle(graph, info) {
    const title = $("title"), scale = strengthScale(graph, info);
    title.title = `${title.textContent}\n${scale.symbol} (${scale.unit}): ${scale.text}`;
  }

  store.subscribe((state, prev) => {
    if (state.pins !== prev.pins) showPins();
    if (state.graph && state.graph !== prev.graph) explainTitle(state.graph, state.info);
    if (state.key !== prev.key) findProblem(null);
  });
}
