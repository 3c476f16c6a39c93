// One image's path (the right panel's "images" tab): a gallery of the benign class's images
// with their clean and attacked predictions at the slider's strength (flipped first, by
// confidence, or in dataset order); a click on one shows its clean and attacked pictures, the
// perturbation, its predictions and the layer where it crosses to the target class, and puts
// its own activations on the graph's nodes (graph.js draws them; the neuron card charts them).
// The server attacks the class once per analysis (the edit stage's editor) and answers from it.
// Its numbers carry their scale: the strength's norm, the perturbation's size in it, and the
// predictions' softmax probabilities (in the titles).
import * as api from "./api.js";
import { strengthScale } from "./explain.js";
import { esc, formatNumber, formatPercent } from "./store.js";

const $ = (id) => document.getElementById(id);

function sorted(gallery, how) {
  const items = [...gallery.items];
  if (how === "flipped") {
    items.sort((a, b) => (b.success - a.success) || (b.correct - a.correct) ||
      (b.attacked_p - a.attacked_p) || (a.position - b.position));
  } else if (how === "confidence") {
    items.sort((a, b) => (b.attacked_p - a.attacked_p) || (a.position - b.position));
  }
  return items;
}

function tileClass(item) {
  return !item.correct ? "wrong" : item.success ? "success" : "missed";
}

export function createImages(store) {
  const galleries = new Map();  // "key|k" → Gallery
  const details = new Map();  // "key|position" → ImageDetail
  let wantedGallery = null, wantedImage = null, timer = null;  // the latest asked for

  function setPanel(panel) {
    $("tab-neuron").setAttribute("aria-selected", String(panel === "neuron"));
    $("tab-images").setAttribute("aria-selected", String(panel === "images"));
    $("card").hidden = panel === "images";
    $("images-panel").hidden = panel !== "images";
  }
  $("tab-neuron").addEventListener("click", () => store.set({ panel: "neuron" }));
  $("tab-images").addEventListener("click", () => store.set({ panel: "images" }));
  $("gallery-sort").addEventListener("change", () => showGallery());
  $("gallery").addEventListener("click", (event) => {
    const tile = event.target.closest("[data-position]");
    if (tile) store.set({ image: +tile.dataset.position });
  });
  $("image-detail").addEventListener("click", (event) => {
    if (event.target.closest("button.close")) store.set({ image: null });
  });

  function status(text) { $("gallery-status").textContent = text; }

  async function showGallery() {
    const { key, graph, strengthIndex, panel } = store.get();
    if (!graph || panel !== "images") return;
    const k = strengthIndex ?? graph.attack.strengths.length - 1;
    const id = `${key}|${k}`;
    wantedGallery = id;
    let gallery = galleries.get(id);
    if (!gallery) {
      status("attacking the class on the server…");
      try {
        gallery = await api.getGallery(key, k);
      } catch (e) {
        if (wantedGallery === id) status(e.message);
        return;
      }
      galleries.set(id, gallery);
      if (wantedGallery !== id) return;
    }
    const eps = formatNumber(gallery.strength);
    const scale = strengthScale(graph, store.get().info);
    status(`${gallery.n_success} of ${gallery.n_correct} flipped at ${scale.symbol} = ${eps} (${scale.unit})`);
    $("gallery-status").title = `of the ${gallery.n_correct} images the model classifies ` +
      `correctly when clean, those the attack at this strength sends to the target (the ASR's ` +
      `count); ${scale.symbol}: ${scale.text}. Each image's title gives its predicted class ` +
      `and softmax probability, clean → attacked`;
    const names = gallery.names;
    const selected = store.get().image;
    $("gallery").innerHTML = sorted(gallery, $("gallery-sort").value).map((it) => {
      const title = `#${it.position} (dataset image ${it.image}): ${names[it.clean]} ${formatPercent(it.clean_p)}` +
        ` → at ε = ${eps}: ${names[it.attacked]} ${formatPercent(it.attacked_p)}` +
        (it.correct ? "" : " (wrong when clean: not counted)");
      return `<button type="button" role="listitem" class="tile ${tileClass(it)}${it.position === selected ? " selected" : ""}"` +
        ` data-position="${it.position}" title="${esc(title)}"><img loading="lazy" alt="" src="${api.datasetImageUrl(key, it.image)}"></button>`;
    }).join("");
    $("gallery").dataset.k = String(k);
  }

  async function loadImage() {
    const { key, image } = store.get();
    if (image == null) return store.set({ imageDetail: null });
    const id = `${key}|${image}`;
    wantedImage = id;
    let detail = details.get(id);
    if (!detail) {
      $("image-detail").hidden = false;
      $("image-detail").innerHTML = `<p class="hint">image #${image}: computing… (the first image of an analysis also averages both classes' activations, one pass over their images)</p>`;
      try {
        detail = await api.getImage(key, image);
      } catch (e) {
        if (wantedImage !== id) return;
        store.set({ imageDetail: null });
        $("image-detail").innerHTML = `<button type="button" class="close" title="back to the whole class">×</button><p class="error">${esc(e.message)}</p>`;
        return;
      }
      details.set(id, detail);
    }
    if (wantedImage === id) store.set({ imageDetail: detail });
  }

  function showDetail() {
    const { imageDetail: d, graph, strengthIndex, image } = store.get();
    for (const tile of document.querySelectorAll("#gallery .tile")) {
      tile.classList.toggle("selected", +tile.dataset.position === image);
    }
    if (!d || !graph) {
      if (image == null) { $("image-detail").hidden = true; $("image-detail").innerHTML = ""; }
      return;
    }
    const k = strengthIndex ?? graph.attack.strengths.length - 1;
    const eps = formatNumber(d.strengths[k]);
    const scale = strengthScale(graph, store.get().info), sym = scale.symbol;
    const norm = graph.attack.norm === "linf" ? "‖δ‖∞" : "‖δ‖₂";
    const size = `${norm} = ${formatNumber(d.perturbation_norm[k])}`;
    const sizeTitle = `the perturbation δ = attacked − clean image, its ${scale.unit === "L∞" ? "largest pixel change" : "L2 length"} ` +
      `on pixels in [0, 1]` + (scale.isC ? " (CW's c does not bound it: the optimisation finds it)"
        : ` (at most ${sym} = ${eps}; less where pixels clip at 0 or 1)`) +
      `. Drawn grey where nothing changes, lighter where pixels rise, darker where they fall, on ` +
      `one scale for all strengths`;
    const clean = d.predictions[0], now = d.predictions[k];
    const crosses = d.crossing[k];
    $("image-detail").hidden = false;
    $("image-detail").innerHTML = `
      <button type="button" class="close" title="back to the whole class">×</button>
      <h2>image #${d.position} <span class="hint">(dataset ${d.image})</span></h2>
      <div class="pics">
        <figure><img src="${d.clean_picture}" alt="clean image"><figcaption>clean</figcaption></figure>
        <figure><img src="${d.attacked_pictures[k]}" alt="attacked image"><figcaption title="${esc(`${sym}: ${scale.text}`)}">${sym} = ${eps} (${esc(scale.unit)})</figcaption></figure>
        <figure><img src="${d.perturbation_pictures[k]}" alt="perturbation"><figcaption class="perturbation" title="${esc(sizeTitle)}">perturbation ${size}</figcaption></figure>
      </div>
      <p class="verdict" title="the predicted class and its softmax probability, clean → attacked at ${sym} = ${eps}">${esc(clean.name)} ${formatPercent(clean.p)} → <b>${esc(now.name)} ${formatPercent(now.p)}</b>
        ${now.label === graph.target.index ? "" : `<span class="hint">(${esc(graph.target.name)} ${formatPercent(now.p_target)})</span>`}</p>
      <p class="verdict crossing">${!d.measured ? `where it crosses is not measured: the dataset has no ${esc(graph.target.name)} images`
        : crosses ? `crosses to ${esc(graph.target.name)} at <b>${esc(crosses)}</b> at this strength`
        : `does not cross to ${esc(graph.target.name)} at this strength`}</p>
      <p class="hint">On the graph, under each neuron: its activation on this image, clean (grey) and attacked (orange).</p>`;
    $("image-detail").dataset.position = String(d.position);
    $("image-detail").dataset.crossing = crosses ?? "";
  }

  store.subscribe((state, prev) => {
    if (state.panel !== prev.panel) setPanel(state.panel);
    if (state.key !== prev.key) { galleries.clear(); details.clear(); $("gallery").innerHTML = ""; }
    if ((state.panel !== prev.panel || state.strengthIndex !== prev.strengthIndex || state.key !== prev.key)
        && state.panel === "images") {
      clearTimeout(timer);  // the slider moves many times a second: ask once it rests
      timer = setTimeout(showGallery, state.strengthIndex !== prev.strengthIndex ? 150 : 0);
    }
    if (state.image !== prev.image || (state.key !== prev.key && state.image != null)) loadImage();
    if (state.imageDetail !== prev.imageDetail || state.strengthIndex !== prev.strengthIndex ||
        state.image !== prev.image) showDetail();
  });
  setPanel(store.get().panel);
}
