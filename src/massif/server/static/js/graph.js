// The graph view (paper, Figure 3B): rows of layers, nodes in three groups, influence edges.
//
// Drawn once per graph and size with D3. Hover must stay well under 100 ms with 300 nodes and
// 1,200 edges, and repainting them all is what costs (not the JavaScript), so the graph is
// never restyled on hover: a translucent veil (an HTML layer the compositor fades) covers it,
// and copies of the hovered node, its sources and its incoming edges are drawn on a small
// overlay SVG above. The slider and the edge-weight toggle restyle the graph itself.
import { layout } from "./layout.js";
import { flipped, nodeColor } from "./store.js";

export function createGraphView(svgElement, store) {
  const svg = d3.select(svgElement);
  const veil = document.getElementById("graph-veil");
  const top = document.getElementById("graph-top");
  let drawn = null;  // {graph, key, positions: Map id→{x,y}, nodeEls: Map, incoming: Map}
  let highlighted = [];

  function draw() {
    const { graph, key, pictures } = store.get();
    svg.selectAll("*").remove();
    top.replaceChildren();
    if (!graph) { drawn = null; return; }
    // Pixel sizes, not 100%: a percentage-sized SVG is laid out again, all 1,500 elements of
    // it, whenever anything on the page changes (measured: 60 ms per hover at 300 nodes).
    const box = svgElement.parentElement.getBoundingClientRect();
    const width = Math.floor(box.width), height = Math.floor(box.height);
    if (width < 10 || height < 10) return;
    for (const el of [svgElement, top]) {
      el.setAttribute("width", width); el.setAttribute("height", height);
      el.style.width = `${width}px`; el.style.height = `${height}px`;
    }
    const L = layout(graph, width, height);
    const positions = new Map(L.nodes.map((p) => [p.node.id, p]));
    const divergence = graph.metrics.divergence_layer;

    const rows = svg.append("g").attr("class", "rows");
    rows.selectAll("rect").data(L.rows).join("rect")
      .attr("class", (r) => `row-band${r.layer === divergence ? " divergence" : ""}`)
      .attr("x", L.labelWidth).attr("width", width - L.labelWidth - 4)
      .attr("y", (r) => r.top + 2).attr("height", (r) => r.height - 4).attr("rx", 4);
    rows.selectAll("text.row-label").data(L.rows).join("text")
      .attr("class", (r) => `row-label${r.layer === divergence ? " divergence" : ""}`)
      .attr("x", L.labelWidth - 8).attr("y", (r) => r.y).text((r) => r.layer);
    rows.selectAll("text.divergence-tag").data(L.rows.filter((r) => r.layer === divergence))
      .join("text").attr("class", "divergence-tag")
      .attr("x", L.labelWidth - 8).attr("y", (r) => r.y + 14).text("◆ divergence");

    const maxInfluence = d3.max(graph.edges, (e) => Math.max(e.influence_benign, e.influence_attacked)) || 1;
    const widthScale = d3.scaleSqrt().domain([0, maxInfluence])
      .range([0.3, Math.max(1.5, Math.min(10, L.size * 0.16))]);
    const link = d3.linkVertical().x((p) => p[0]).y((p) => p[1]);
    const edges = graph.edges.filter((e) => positions.has(e.source) && positions.has(e.target));
    const edgeSel = svg.append("g").attr("class", "edges").selectAll("path").data(edges).join("path")
      .attr("class", "edge")
      .attr("data-source", (e) => e.source).attr("data-target", (e) => e.target)
      .attr("d", (e) => {
        const s = positions.get(e.source), t = positions.get(e.target);
        return link({ source: [s.x, s.y - L.size / 2], target: [t.x, t.y + L.size / 2] });
      });

    const nodeSel = svg.append("g").attr("class", "nodes").selectAll("g").data(L.nodes).join("g")
      .attr("class", (p) => `node ${p.node.group}${pictures?.pictures[p.node.id] ? "" : " placeholder"}`)
      .attr("data-id", (p) => p.node.id)
      .attr("transform", (p) => `translate(${p.x},${p.y})`);
    const s = L.size;
    nodeSel.append("title").text((p) => p.node.id);
    nodeSel.append("rect").attr("class", "frame")
      .attr("x", -s / 2).attr("y", -s / 2).attr("width", s).attr("height", s).attr("rx", Math.min(4, s / 6))
      .attr("fill", (p) => (pictures?.pictures[p.node.id] ? "#fff" : nodeColor(p.node)))
      .attr("stroke", (p) => nodeColor(p.node));
    nodeSel.filter((p) => pictures?.pictures[p.node.id]).append("image")
      .attr("href", (p) => pictures.pictures[p.node.id])
      .attr("x", -s / 2 + 2).attr("y", -s / 2 + 2).attr("width", s - 4).attr("height", s - 4)
      .attr("preserveAspectRatio", "xMidYMid slice").style("image-rendering", "pixelated");
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
      .on("mouseleave", () => store.set({ hover: null }))
      .on("click", (_event, p) => {
        const { editMode, masked, pinned } = store.get();
        const id = p.node.id;
        if (!editMode) return store.set({ pinned: pinned === id ? null : id });
        store.set({ masked: masked.includes(id) ? masked.filter((m) => m !== id) : [...masked, id] });
      });

    const nodeEls = new Map();
    nodeSel.each(function (p) { nodeEls.set(p.node.id, this); });
    const incoming = new Map();
    edgeSel.each(function (e) {
      if (!incoming.has(e.target)) incoming.set(e.target, []);
      incoming.get(e.target).push({ el: this, source: e.source });
    });
    drawn = { graph, key, nodeSel, edgeSel, widthScale, nodeEls, incoming, layout: L };
    highlighted = [];
    applyEdgeMode(); applyStrength(); applyMasked(); applyFocus();
    veil.style.left = `${L.labelWidth}px`;
    svgElement.dataset.drawn = `${graph.nodes.length}`;
  }

  function applyEdgeMode() {
    if (!drawn) return;
    const field = store.get().edgeMode === "benign" ? "influence_benign" : "influence_attacked";
    drawn.edgeSel.attr("stroke-width", (e) => drawn.widthScale(Math.max(0, e[field])));
    svgElement.dataset.edgeMode = store.get().edgeMode;
  }

  function applyStrength() {
    if (!drawn) return;
    const { graph, strengthIndex } = store.get();
    const eps = graph.attack.strengths[strengthIndex ?? graph.attack.strengths.length - 1];
    drawn.nodeSel
      .classed("flipped", (p) => flipped(p.node, eps))
      .classed("unflipped", (p) => p.node.group !== "shared" && !flipped(p.node, eps));
  }

  function applyMasked() {
    if (!drawn) return;
    const masked = new Set(store.get().masked);
    drawn.nodeSel.classed("masked", (p) => masked.has(p.node.id));
    svgElement.dataset.masked = String(masked.size);
  }

  function applyFocus() {
    for (const el of highlighted) el.classList.remove("pinned");
    highlighted = [];
    top.replaceChildren();
    if (!drawn) { veil.classList.remove("on"); return; }
    const { hover, pinned } = store.get();
    if (pinned && drawn.nodeEls.has(pinned)) {
      drawn.nodeEls.get(pinned).classList.add("pinned");
      highlighted.push(drawn.nodeEls.get(pinned));
    }
    const focus = hover ?? pinned;
    const on = focus != null && drawn.nodeEls.has(focus);
    veil.classList.toggle("on", on);
    top.classList.toggle("on", on);
    if (!on) return;
    const copy = (el, cls) => {
      const c = el.cloneNode(true);
      c.classList.add(cls);
      c.classList.remove("unflipped");
      top.appendChild(c);
    };
    for (const { el } of drawn.incoming.get(focus) ?? []) copy(el, "hi");
    for (const { source } of drawn.incoming.get(focus) ?? []) copy(drawn.nodeEls.get(source), "src");
    copy(drawn.nodeEls.get(focus), "hover");
  }

  store.subscribe((state, prev) => {
    if (state.graph !== prev.graph || state.pictures !== prev.pictures) return draw();
    if (state.edgeMode !== prev.edgeMode) applyEdgeMode();
    if (state.strengthIndex !== prev.strengthIndex) applyStrength();
    if (state.masked !== prev.masked) applyMasked();
    if (state.hover !== prev.hover || state.pinned !== prev.pinned) applyFocus();
  });
  let timer = null;
  new ResizeObserver(() => { clearTimeout(timer); timer = setTimeout(draw, 60); })
    .observe(svgElement.parentElement);
  return { draw };
}
