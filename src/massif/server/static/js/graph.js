// The graph view (paper, Figure 3B): rows of layers, nodes in three groups, influence edges.
//
// Drawn once per graph and size with D3. Hover must stay well under 100 ms with 300 nodes and
// 1,200 edges, and repainting them all is what costs (not the JavaScript), so the graph is
// never restyled on hover: a translucent veil (an HTML layer the compositor fades) covers it,
// and copies of the focused nodes (hovered and pinned), the nodes they reach and the edges on
// the way are drawn on a small overlay SVG above. The slider, the edge view, the edges per
// neuron, the pathway highlight and zooming restyle the graph itself. Edges cut by "edges per
// neuron" (edgetop.js) stay in the SVG, hidden (class "cut"); the overlay's copies show every
// edge a hover or the pins trace, cut or not (docs/web.md, Edge views).
import { EDGE_WEIGHT, shownEdges } from "./edgetop.js";
import { createKeyboard } from "./graphkeys.js";
import { layout } from "./layout.js";
import { edgeId, pathway, trace } from "./pathways.js";
import { EDGE_COLORS, changeColor, divergenceAt, flipped, nodeColor } from "./store.js";

const SVG_NS = "http://www.w3.org/2000/svg";

export function createGraphView(svgElement, store) {
  const svg = d3.select(svgElement);
  const veil = document.getElementById("graph-veil");
  const top = document.getElementById("graph-top");
  const resetZoom = document.getElementById("zoom-reset");
  let drawn = null;  // {graph, nodeSel, edgeSel, nodeEls: Map id→el, edgeEls: Map edgeId→el, ...}
  let highlighted = [];
  let transform = d3.zoomIdentity;
  let overlay = null;  // the overlay SVG's zoomed group
  let drawnSize = null;  // "width x height" of the last drawing

  const zoom = d3.zoom().scaleExtent([1, 8]).clickDistance(4)  // a shaky click still clicks
    .filter((event) => (!event.ctrlKey || event.type === "wheel") && !event.button && event.type !== "dblclick")
    .on("zoom", (event) => {
      transform = event.transform;
      svg.select("g.zoom").attr("transform", transform);
      overlay?.setAttribute("transform", transform);
      resetZoom.hidden = transform.k === 1 && transform.x === 0 && transform.y === 0;
      svgElement.dataset.zoom = transform.k.toFixed(2);
      placeHeads();
    });

  // The row heads stay in their column and follow their rows up and down as the graph zooms.
  function placeHeads() {
    drawn?.heads.attr("transform", (r) => `translate(0,${transform.applyY(r.y)})`);
  }
  svg.call(zoom);
  resetZoom.addEventListener("click", () => svg.transition().duration(200).call(zoom.transform, d3.zoomIdentity));
  // The keyboard: one tab stop, arrows across the nodes (graphkeys.js).
  const keys = createKeyboard(svgElement, store, { current: () => drawn, activate, show: showNode, ring: placeRing });

  function draw() {
    const { graph, pictures } = store.get();
    svg.selectAll("*").remove();
    top.replaceChildren();
    overlay = null;
    if (!graph) { drawn = null; keys.drawn(); return; }
    // Pixel sizes, not 100%: a percentage-sized SVG is laid out again, all 1,500 elements of
    // it, whenever anything on the page changes (measured: 60 ms per hover at 300 nodes).
    const box = svgElement.parentElement.getBoundingClientRect();
    const width = Math.floor(box.width), height = Math.floor(box.height);
    if (width < 10 || height < 10) return;
    drawnSize = `${width}x${height}`;
    for (const el of [svgElement, top]) {
      el.setAttribute("width", width); el.setAttribute("height", height);
      el.style.width = `${width}px`; el.style.height = `${height}px`;
    }
    zoom.extent([[0, 0], [width, height]]).translateExtent([[0, 0], [width, height]]);
    const L = layout(graph, width, height);
    const positions = new Map(L.nodes.map((p) => [p.node.id, p]));
    const root = svg.append("g").attr("class", "zoom").attr("transform", transform);
    overlay = document.createElementNS("http://www.w3.org/2000/svg", "g");
    overlay.setAttribute("transform", transform);
    top.appendChild(overlay);
    pinsLayer = hoverLayer = null;

    const rows = root.append("g").attr("class", "rows");
    rows.selectAll("rect").data(L.rows).join("rect").attr("class", "row-band")
      .attr("data-layer", (r) => r.layer)
      .attr("x", L.labelWidth).attr("width", width - L.labelWidth - 4)
      .attr("y", (r) => r.top + 2).attr("height", (r) => r.height - 4).attr("rx", 4);
    rows.append("text").attr("class", "image-tag").attr("x", width - 12);
    // Each row's head, in a column that does not zoom (placeHeads follows the rows): the layer,
    // how many attacked images have crossed to the target by it at the slider's strength (text
    // and bar), and the divergence mark (both set by applyStrength).
    const headCol = svg.append("g").attr("class", "row-heads");
    headCol.append("rect").attr("class", "label-column").attr("width", L.labelWidth).attr("height", height);
    const heads = headCol.selectAll("g.row-head").data(L.rows.map((r, i) => ({ ...r, index: i })))
      .join("g").attr("class", "row-head").attr("data-layer", (r) => r.layer);
    heads.append("text").attr("class", "row-label").attr("x", L.labelWidth - 8).text((r) => r.layer);
    heads.append("text").attr("class", "divergence-tag").attr("x", L.labelWidth - 8).attr("y", -14);
    const barWidth = L.labelWidth - 16;
    const crossed = heads.filter(() => !!graph.metrics.divergence).append("g")
      .attr("class", "crossed").attr("data-layer", (r) => r.layer).attr("transform", "translate(8,9)");
    crossed.append("title").text(`attacked images (correct when clean) that are closer to ${graph.target.name}'s activations than to ${graph.benign.name}'s from this layer on, at the slider's strength`);
    crossed.append("rect").attr("class", "crossed-track").attr("width", barWidth).attr("height", 3);
    crossed.append("rect").attr("class", "crossed-bar").attr("height", 3).attr("width", 0);
    crossed.append("text").attr("class", "crossed-text").attr("x", barWidth).attr("y", 10);

    const link = d3.linkVertical().x((p) => p[0]).y((p) => p[1]);
    const edges = graph.edges.filter((e) => positions.has(e.source) && positions.has(e.target));
    const edgeSel = root.append("g").attr("class", "edges").selectAll("path").data(edges).join("path")
      .attr("class", "edge")
      .attr("data-source", (e) => e.source).attr("data-target", (e) => e.target)
      .attr("d", (e) => {
        const s = positions.get(e.source), t = positions.get(e.target);
        return link({ source: [s.x, s.y - L.size / 2], target: [t.x, t.y + L.size / 2] });
      });

    const nodeSel = root.append("g").attr("class", "nodes").selectAll("g").data(L.nodes).join("g")
      .attr("class", (p) => `node ${p.node.group}${pictures?.pictures[p.node.id] ? "" : " placeholder"}`)
      .attr("data-id", (p) => p.node.id)
      .attr("id", (_p, i) => `graph-node-${i}`).attr("role", "button")  // for aria-activedescendant
      .attr("transform", (p) => `translate(${p.x},${p.y})`);
    const s = L.size;
    nodeSel.append("title").text((p) => p.node.id);
    nodeSel.append("rect").attr("class", "frame")
      .attr("x", -s / 2).attr("y", -s / 2).attr("width", s).attr("height", s).attr("rx", Math.min(4, s / 6));
    nodeSel.filter((p) => pictures?.pictures[p.node.id]).append("image")
      .attr("href", (p) => pictures.pictures[p.node.id])
      .attr("x", -s / 2 + 2).attr("y", -s / 2 + 2).attr("width", s - 4).attr("height", s - 4)
      .attr("preserveAspectRatio", "xMidYMid slice").style("image-rendering", "pixelated");
    const ring = s / 2 + 3;  // drawn on every node, shown for pathway and greedy nodes
    nodeSel.append("rect").attr("class", "ring").attr("x", -ring).attr("y", -ring)
      .attr("width", 2 * ring).attr("height", 2 * ring).attr("rx", Math.min(6, s / 5));
    // One image's own activations (the images tab): clean and attacked bars along the bottom.
    const bars = nodeSel.append("g").attr("class", "image-bars")
      .attr("transform", `translate(${-s / 2 + 2},${s / 2 - 10})`);
    bars.append("rect").attr("class", "bar-back").attr("width", s - 4).attr("height", 8);
    bars.append("rect").attr("class", "bar-clean").attr("y", 1).attr("height", 3).attr("width", 0);
    bars.append("rect").attr("class", "bar-attacked").attr("y", 4).attr("height", 3).attr("width", 0);
    const cross = s / 2 - 3;  // drawn on every node, shown only when it is masked
    nodeSel.append("path").attr("class", "cross")
      .attr("d", `M${-cross},${-cross}L${cross},${cross}M${cross},${-cross}L${-cross},${cross}`);
    const placeholders = nodeSel.filter((p) => !pictures?.pictures[p.node.id]);
    if (s >= 58) {  // room for the whole id: layer above channel
      const text = placeholders.append("text").attr("aria-label", (p) => p.node.id);
      text.append("tspan").attr("x", 0).attr("dy", "-0.55em").text((p) => p.node.layer);
      text.append("tspan").attr("x", 0).attr("dy", "1.2em").text((p) => `:${p.node.channel}`);
    } else {  // the channel alone, in a font that fits the box (none when it would not)
      const fit = (p) => Math.min(11, (s - 3) / (0.62 * String(p.node.channel).length + 0.2));
      placeholders.filter((p) => fit(p) >= 6).append("text").attr("aria-label", (p) => p.node.id)
        .style("font-size", (p) => `${fit(p)}px`).text((p) => p.node.channel);
    }
    nodeSel
      .on("mouseenter", (_event, p) => store.set({ hover: p.node.id }))
      .on("mouseleave", () => store.set({ hover: keys.held() }))  // back to the keyboard's node
      .on("click", (event, p) => {
        keys.clicked(p.node.id);
        activate(p.node.id, event.shiftKey || event.ctrlKey || event.metaKey);
      });

    const nodeEls = new Map(), edgeEls = new Map();
    nodeSel.each(function (p) { nodeEls.set(p.node.id, this); });
    edgeSel.each(function (e) { edgeEls.set(edgeId(e), this); });
    drawn = { graph, nodeSel, edgeSel, nodeEls, edgeEls, rows, heads, crossed, barWidth, layout: L };
    placeHeads();
    highlighted = [];
    applyColors(); applyEdgeMode(); applyStrength(); applyMasked(); applyGreedy(); applyPathway(); applyImage();
    applyPins(); keys.drawn();
    veil.style.left = `${L.labelWidth}px`;
    // The highlighted copies stay right of the layer names, zoomed or not.
    top.style.clipPath = `inset(0 0 0 ${L.labelWidth}px)`;
    svgElement.dataset.drawn = `${graph.nodes.length}`;
    svgElement.dataset.draws = String(+(svgElement.dataset.draws ?? 0) + 1);  // for the tests
  }

  function applyEdgeMode() {
    if (!drawn) return;
    const { edgeMode, topEdges } = store.get();
    const edges = drawn.graph.edges;
    const value = EDGE_WEIGHT[edgeMode];
    const L = drawn.layout;
    const maxInfluence = d3.max(edges, (e) => Math.max(e.influence_benign, e.influence_attacked)) || 1;
    const domain = edgeMode === "change" ? (d3.max(edges, value) || 1) : maxInfluence;
    const widthScale = d3.scaleSqrt().domain([0, domain])
      .range([0.3, Math.max(1.5, Math.min(10, L.size * 0.16))]);
    const color = edgeMode === "change"
      ? ((c) => (e) => c(e.influence_attacked - e.influence_benign))(changeColor(domain))
      : () => EDGE_COLORS[edgeMode];
    drawn.edgeSel.attr("stroke-width", (e) => widthScale(value(e))).attr("stroke", color);
    // Edges per neuron: the others hidden (the widths' scale stays the whole graph's).
    const shown = shownEdges(edges, edgeMode, topEdges);
    drawn.edgeSel.classed("cut", (e) => !shown.has(edgeId(e)));
    svgElement.dataset.edgeMode = edgeMode;
    svgElement.dataset.edgesShown = String(drawn.edgeSel.filter((e) => shown.has(edgeId(e))).size());
  }

  // The frames in the palette's colours (store.js): the group's, paler for a less vulnerable
  // node; a placeholder is filled with it.
  function applyColors() {
    if (!drawn) return;
    const { pictures } = store.get();
    drawn.nodeSel.select("rect.frame")
      .attr("fill", (p) => (pictures?.pictures[p.node.id] ? "#fff" : nodeColor(p.node)))
      .attr("stroke", (p) => nodeColor(p.node));
  }

  function applyStrength() {
    if (!drawn) return;
    const { graph, strengthIndex } = store.get();
    const k = strengthIndex ?? graph.attack.strengths.length - 1;
    const eps = graph.attack.strengths[k];
    drawn.nodeSel
      .classed("flipped", (p) => flipped(p.node, eps))
      .classed("unflipped", (p) => p.node.group !== "shared" && !flipped(p.node, eps));
    // Edges fade with their nodes: an edge from or to a neuron not flipped at ε (the legend
    // says so; edges are measured at ε_max only).
    const faded = new Set(graph.nodes.filter((n) => n.group !== "shared" && !flipped(n, eps)).map((n) => n.id));
    drawn.edgeSel.classed("faded", (e) => faded.has(e.source) || faded.has(e.target));
    const fractions = graph.metrics.divergence?.crossed[k] ?? [];
    // No divergence mark where every layer reads "0% crossed".
    const crossedAny = fractions.some((f) => Math.round(100 * f) > 0);
    const divergence = crossedAny ? divergenceAt(graph, k) : null;
    const row = drawn.layout.rows.find((r) => r.layer === divergence);
    drawn.rows.selectAll("rect.row-band").classed("divergence", (r) => r.layer === divergence);
    drawn.heads.select("text.row-label").classed("divergence", (r) => r.layer === divergence);
    drawn.heads.select("text.divergence-tag").text((r) => (r.layer === divergence && row ? "◆ divergence" : ""));
    drawn.crossed.select("rect.crossed-bar").attr("width", (r) => drawn.barWidth * (fractions[r.index] ?? 0));
    drawn.crossed.select("text.crossed-text").text((r) => `${Math.round(100 * (fractions[r.index] ?? 0))}% crossed`);
    svgElement.dataset.divergence = divergence ?? "";
  }

  // The selected image's activation on each node, clean and at the slider's strength, as a
  // share of the largest of its own values and the class mean's (node.activation), and the
  // layer where it crosses to the target class.
  function applyImage() {
    if (!drawn) return;
    const { imageDetail: d, strengthIndex, graph } = store.get();
    const k = strengthIndex ?? graph.attack.strengths.length - 1;
    svg.classed("image-on", !!d);
    const width = drawn.layout.size - 4;
    if (d) {
      const scale = (p) => Math.max(1e-12, ...(d.activations[p.node.id] ?? [0]), ...p.node.activation);
      const bar = (p, i) => width * Math.max(0, (d.activations[p.node.id] ?? [])[i] ?? 0) / scale(p);
      drawn.nodeSel.select("rect.bar-clean").attr("width", (p) => bar(p, 0));
      drawn.nodeSel.select("rect.bar-attacked").attr("width", (p) => bar(p, k));
    }
    const crossing = d ? d.crossing[k] : null;
    const row = drawn.layout.rows.find((r) => r.layer === crossing);
    drawn.rows.select("text.image-tag").attr("y", row ? row.top + 16 : -100)
      .text(row ? `◀ image #${d.position} crosses here` : "");
    svgElement.dataset.image = d ? `${d.position}@${k}:${crossing ?? ""}` : "";
  }

  function applyMasked() {
    if (!drawn) return;
    const masked = new Set(store.get().masked);
    drawn.nodeSel.classed("masked", (p) => masked.has(p.node.id));
    svgElement.dataset.masked = String(masked.size);
  }

  function applyGreedy() {
    if (!drawn) return;
    const greedy = new Set(store.get().greedy);
    drawn.nodeSel.classed("greedy", (p) => greedy.has(p.node.id));
  }

  function applyPathway() {
    if (!drawn) return;
    const { highlight, strengthIndex, graph } = store.get();
    const on = highlight && highlight !== "none";
    const k = strengthIndex ?? graph.attack.strengths.length - 1;
    const path = on ? pathway(graph, highlight, k) : { nodes: new Set(), edges: new Set() };
    // No node scores above 0 (no change at all at ε = 0, say): nothing to fade toward.
    svg.classed("pathway", on && path.nodes.size > 0);
    svgElement.dataset.pathwayEmpty = on && path.nodes.size === 0 ? "true" : "false";
    drawn.nodeSel.classed("on-path", (p) => path.nodes.has(p.node.id));
    drawn.edgeSel.classed("on-path", (e) => path.edges.has(edgeId(e)));
    svgElement.dataset.pathway = on ? [...path.nodes].join(",") : "";
  }

  // The overlay: copies of the pins' part (rebuilt when the pins, the tracing or the graph's
  // look change) and of the hovered node's part (rebuilt on each hover, and small), so a hover
  // with many pins copies only what the hover adds.
  let pinsLayer = null, hoverLayer = null, pinnedReach = null;

  function copyInto(layer, reached, focus, cls, skip = null) {
    const copy = (el, c) => {
      const clone = el.cloneNode(true);
      clone.classList.add(c);
      clone.classList.remove("unflipped", "cut");  // the overlay shows every edge it traces
      layer.appendChild(clone);
    };
    for (const id of reached.edges) {
      const el = drawn.edgeEls.get(id);
      if (el && !skip?.edges.has(id)) copy(el, "hi");
    }
    const focused = new Set(focus);
    for (const id of reached.nodes) {
      if (!focused.has(id) && !skip?.nodes.has(id)) copy(drawn.nodeEls.get(id), "src");
    }
    for (const id of focus) copy(drawn.nodeEls.get(id), cls);
    for (const el of layer.querySelectorAll("[id]")) el.removeAttribute("id");  // the graph's own
    for (const clone of layer.querySelectorAll(":scope > .node.pinned")) addPinRing(clone);
  }

  // A pinned node keeps its group's colour and gets a ring of a colour nothing else uses: yellow
  // (Okabe and Ito's), edged in black so it shows on white, on the veil and on every group.
  function addPinRing(clone) {
    const s = drawn.layout.size, r = s / 2 + 7.5;
    const g = clone.appendChild(document.createElementNS(SVG_NS, "g"));
    g.setAttribute("class", "pin-ring");
    for (const [cls, color, width] of [["edge", "#222", 5], ["fill", "#f0e442", 3]]) {
      const rect = g.appendChild(document.createElementNS(SVG_NS, "rect"));
      const attrs = { class: cls, x: -r, y: -r, width: 2 * r, height: 2 * r, rx: Math.min(8, s / 4),
                      fill: "none", stroke: color, "stroke-width": width };
      for (const [k, v] of Object.entries(attrs)) rect.setAttribute(k, v);
    }
  }

  // The keyboard's focus ring, on the overlay above everything: a dashed black ring on a white
  // halo, outside the pathway's and the pins' rings, seen on any colour of either palette.
  let focusRing = null;
  function placeRing(p) {
    if (!focusRing) return;
    focusRing.style.display = p ? "" : "none";
    if (!p) return;
    const s = drawn.layout.size, r = s / 2 + 13;
    focusRing.setAttribute("transform", `translate(${p.x},${p.y})`);
    for (const rect of focusRing.children) {
      const attrs = { x: -r, y: -r, width: 2 * r, height: 2 * r, rx: Math.min(10, s / 3) };
      for (const [k, v] of Object.entries(attrs)) rect.setAttribute(k, v);
    }
  }
  function newFocusRing() {
    const g = document.createElementNS(SVG_NS, "g");
    g.setAttribute("class", "focus-ring");
    g.style.display = "none";
    for (const cls of ["halo", "dash"]) {
      g.appendChild(document.createElementNS(SVG_NS, "rect")).setAttribute("class", cls);
    }
    return g;
  }

  // What a click on a node does (and Enter on the focused one): pin it alone or unpin it, with
  // `add` (shift, ctrl) add it to the pins or take it out; in "click deletes neurons" mode,
  // delete or restore it.
  function activate(id, add) {
    const { editMode, masked, pins } = store.get();
    if (editMode) {
      return store.set({ masked: masked.includes(id) ? masked.filter((m) => m !== id) : [...masked, id] });
    }
    const has = pins.includes(id);
    if (add) return store.set({ pins: has ? pins.filter((x) => x !== id) : [...pins, id] });
    store.set({ pins: has && pins.length === 1 ? [] : [id] });
  }

  // Pan a zoomed graph so that node position `p` is in view (centred right of the layer names
  // when it was not); the whole graph is in view unzoomed.
  function showNode(p) {
    if (!p || transform.k === 1) return;
    const w = +svgElement.getAttribute("width"), h = +svgElement.getAttribute("height");
    const left = drawn.layout.labelWidth, margin = (drawn.layout.size * transform.k) / 2 + 16;
    const [x, y] = transform.apply([p.x, p.y]);
    if (x >= left + margin && x <= w - margin && y >= margin && y <= h - margin) return;
    svg.call(zoom.translateTo, p.x, p.y, [(left + w) / 2, h / 2]);  // at once: keys repeat fast
  }

  function applyPins() {
    for (const el of highlighted) el.classList.remove("pinned");
    highlighted = [];
    pinnedReach = null;
    if (!overlay) return;
    if (!pinsLayer || pinsLayer.parentNode !== overlay) {
      overlay.replaceChildren();
      pinsLayer = overlay.appendChild(document.createElementNS("http://www.w3.org/2000/svg", "g"));
      hoverLayer = overlay.appendChild(document.createElementNS("http://www.w3.org/2000/svg", "g"));
      focusRing = overlay.appendChild(newFocusRing());
    }
    pinsLayer.replaceChildren();
    if (!drawn) return;
    const { pins, trace: direction } = store.get();
    const shown = pins.filter((id) => drawn.nodeEls.has(id));
    for (const id of shown) {
      drawn.nodeEls.get(id).classList.add("pinned");
      highlighted.push(drawn.nodeEls.get(id));
    }
    if (shown.length) {
      pinnedReach = trace(drawn.graph, shown, direction);
      copyInto(pinsLayer, pinnedReach, shown, "pin");
    }
    applyHover();
  }

  function applyHover() {
    hoverLayer?.replaceChildren();
    const { hover, trace: direction } = store.get();
    const hovering = drawn && hover != null && drawn.nodeEls.has(hover);
    const on = hovering || pinnedReach !== null;
    veil.classList.toggle("on", on);
    top.classList.toggle("on", on);
    if (!hovering || !hoverLayer) return;
    copyInto(hoverLayer, trace(drawn.graph, [hover], direction), [hover], "hover", pinnedReach);
  }

  // Centre a node in view (the "find neuron" box), zooming in when the graph is dense.
  function reveal(id) {
    const p = drawn?.layout.nodes.find((q) => q.node.id === id);
    if (!p) return false;
    const k = Math.max(1, Math.min(4, 48 / drawn.layout.size));
    const w = +svgElement.getAttribute("width"), h = +svgElement.getAttribute("height");
    svg.transition().duration(250).call(zoom.transform,
      d3.zoomIdentity.translate(w / 2, h / 2).scale(k).translate(-p.x, -p.y));
    return true;
  }

  store.subscribe((state, prev) => {
    if (state.graph !== prev.graph || state.pictures !== prev.pictures) {
      if (state.graph !== prev.graph) { transform = d3.zoomIdentity; svg.property("__zoom", transform); resetZoom.hidden = true; }
      return draw();
    }
    let restyled = false;  // the overlay's copies must then be made again
    if (state.edgeMode !== prev.edgeMode || state.topEdges !== prev.topEdges) { applyEdgeMode(); restyled = true; }
    if (state.palette !== prev.palette) { applyColors(); applyEdgeMode(); restyled = true; }
    if (state.strengthIndex !== prev.strengthIndex) { applyStrength(); restyled = true; }
    if (state.masked !== prev.masked) { applyMasked(); restyled = true; }
    if (state.greedy !== prev.greedy) { applyGreedy(); restyled = true; }
    if (state.imageDetail !== prev.imageDetail || (state.imageDetail && state.strengthIndex !== prev.strengthIndex)) {
      applyImage(); restyled = true;
    }
    if (state.highlight !== prev.highlight || (state.highlight !== "none" && state.strengthIndex !== prev.strengthIndex)) {
      applyPathway(); restyled = true;
    }
    if (state.pins !== prev.pins || state.trace !== prev.trace ||
        (restyled && (state.pins.length || state.hover != null))) applyPins();
    else if (state.hover !== prev.hover) applyHover();
  });
  let timer = null;
  // Drawn again when the box's size changes, unless it was drawn at that size already (the
  // legend sets its height before a new analysis is drawn).
  const sizeNow = () => {
    const box = svgElement.parentElement.getBoundingClientRect();
    return `${Math.floor(box.width)}x${Math.floor(box.height)}`;
  };
  new ResizeObserver(() => {
    clearTimeout(timer);
    timer = setTimeout(() => { if (sizeNow() !== drawnSize) draw(); }, 60);
  }).observe(svgElement.parentElement);
  return { draw, reveal };
}
