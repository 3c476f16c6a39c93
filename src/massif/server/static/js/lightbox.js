// The large view: a neuron's feature visualization, or its dataset examples with each patch's
// image class and activation (from the node's JSON twin), over the page. Escape, the × or a
// click outside closes it.
import * as api from "./api.js";
import { esc, formatNumber } from "./store.js";

const $ = (id) => document.getElementById(id);
let opened = 0;  // which opening the answer that arrives belongs to

export function closeLightbox() {
  opened++;
  $("lightbox").hidden = true;
  $("lightbox-body").replaceChildren();
}

export async function openLightbox(store, id, kind) {
  const { key, pictures } = store.get();
  const url = (kind === "picture" ? pictures?.pictures : pictures?.examples)?.[id];
  if (!url) return;
  const mine = ++opened;
  const box = $("lightbox"), body = $("lightbox-body");
  $("lightbox-title").textContent = `${id} · ${kind === "picture" ? "feature visualization" : "dataset examples"}`;
  box.dataset.kind = kind;
  box.hidden = false;
  $("lightbox-close").focus();
  if (kind === "picture") {
    body.innerHTML = `<img class="large picture" src="${esc(url)}" alt="feature visualization of ${esc(id)}">`;
    return;
  }
  body.innerHTML = `<img class="large examples" src="${esc(url)}" alt="dataset examples of ${esc(id)}">
    <ol class="patches"></ol>`;
  const patches = body.querySelector("ol.patches");
  try {
    const detail = await api.getNode(key, id);
    const list = detail.examples_info ?? [];
    if (mine !== opened) return;  // closed, or opened again for another picture meanwhile
    patches.innerHTML = list.map((p) =>
      `<li>${p.class_name != null ? `<span class="class">${esc(p.class_name)}</span>` : ""}` +
      `<span class="value">image ${p.image} · ${formatNumber(p.value)}</span></li>`).join("");
    patches.style.setProperty("--n", String(Math.max(1, list.length)));
  } catch (e) {
    if (mine === opened) patches.textContent = e.message;
  }
}

export function setupLightbox() {
  $("lightbox-close").addEventListener("click", closeLightbox);
  $("lightbox").addEventListener("click", (event) => { if (event.target.id === "lightbox") closeLightbox(); });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !$("lightbox").hidden) closeLightbox();
  });
}
