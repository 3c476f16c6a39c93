// What keeps the right-hand panel's parts in view at 1280×800 and up (issue 25, item 3).
//
// The panel is a column: the results box on top (at most about half the panel's height,
// scrolling inside), the tabs, then the card or the images, which scroll inside too, so the
// card always starts in the window whatever was computed before. Each result (the deletion,
// the defense, the curves) folds to its title with a click on it. In the images tab, hovering
// a node shows its card over the images while the pointer is on the node.
const $ = (id) => document.getElementById(id);

export function createPanels(store) {
  const results = $("results"), card = $("card"), tabs = $("panel-tabs");

  // A click on a result's title folds it to that line, or unfolds it.
  results.addEventListener("click", (event) => {
    const title = event.target.closest("#results > div > h2");
    if (!title) return;
    const box = title.parentElement;
    box.classList.toggle("folded");
    title.setAttribute("aria-expanded", String(!box.classList.contains("folded")));
  });
  for (const title of results.querySelectorAll(":scope > div > h2")) {
    title.tabIndex = 0;
    title.setAttribute("role", "button");
    title.setAttribute("aria-expanded", "true");
    title.title = "click to fold or unfold";
    title.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") { event.preventDefault(); title.click(); }
    });
  }

  // What was just used comes into view inside the results box: a new deletion's numbers, the
  // defense's part when a search starts (the box may have been scrolled to another part).
  function reveal(box) {
    if (box.hidden) return;
    const top = box.offsetTop - results.offsetTop;
    if (top < results.scrollTop || top + Math.min(box.offsetHeight, results.clientHeight) >
        results.scrollTop + results.clientHeight) results.scrollTop = top;
  }
  const html = document.documentElement;
  new MutationObserver(() => {
    if (html.dataset.defense === "busy") reveal($("defense-box"));
    if (html.dataset.edit === "busy") reveal($("edit-box"));
  }).observe(html, { attributes: true, attributeFilter: ["data-defense", "data-edit"] });

  // The card over the images tab while a node is hovered there.
  function overlay(state) {
    const on = state.panel === "images" && state.hover != null && !!state.graph;
    card.classList.toggle("overlay", on);
    if (on) card.style.top = `${tabs.offsetTop + tabs.offsetHeight}px`;
    card.hidden = state.panel === "images" && !on;
  }
  store.subscribe((state, prev) => {
    if (state.panel !== prev.panel || state.hover !== prev.hover) overlay(state);
  });
}
