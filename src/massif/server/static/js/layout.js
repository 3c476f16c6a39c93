// Node positions for the graph view (paper, Figure 3B), as a pure function.
//
// One row per layer, input side at the bottom. Every row shares one vertical axis: the shared
// nodes sit centred on it, suppressed nodes to its left and emphasized nodes to its right, the
// most vulnerable of each nearest the axis. Slots are the same width in every row and wide
// enough for the fullest left and right halves of any row, so nodes never overlap.
const GROUP_ORDER = { suppressed: 0, shared: 1, emphasized: 2 };

export function layout(graph, width, height, options = {}) {
  const big = width > 2400;
  const labelWidth = options.labelWidth ?? (big ? 150 : 96);
  const pad = big ? 24 : 12;
  const maxSize = options.maxSize ?? (big ? 140 : 96);
  const rowsTop = pad, rowsBottom = height - pad;
  const n = Math.max(1, graph.layers.length);
  const rowHeight = (rowsBottom - rowsTop) / n;
  const byLayer = new Map(graph.layers.map((l) => [l, { suppressed: [], shared: [], emphasized: [] }]));
  for (const node of graph.nodes) byLayer.get(node.layer)?.[node.group].push(node);
  const vuln = (d) => d.vulnerability ?? 0;
  const sumImportance = (d) => d.importance_benign[0] + d.importance_target.at(-1);
  let left = 0, right = 0;
  for (const g of byLayer.values()) {
    g.suppressed.sort((a, b) => vuln(b) - vuln(a) || a.channel - b.channel);  // nearest first
    g.emphasized.sort((a, b) => vuln(b) - vuln(a) || a.channel - b.channel);
    g.shared.sort((a, b) => sumImportance(b) - sumImportance(a) || a.channel - b.channel);
    left = Math.max(left, g.suppressed.length + g.shared.length / 2);
    right = Math.max(right, g.emphasized.length + g.shared.length / 2);
  }
  const gap = 0.6;  // empty slots between groups
  const usable = width - labelWidth - 2 * pad;
  const slot = usable / Math.max(1, left + right + 2 * gap);
  const size = Math.max(4, Math.min(maxSize, 0.88 * slot, 0.62 * rowHeight));
  const axis = labelWidth + pad + (left + gap) * slot;
  const placed = [];
  const rows = [];
  graph.layers.forEach((layer, i) => {
    const y = rowsBottom - (i + 0.5) * rowHeight;
    rows.push({ layer, y, top: y - rowHeight / 2, height: rowHeight });
    const g = byLayer.get(layer);
    const half = g.shared.length / 2;
    g.shared.forEach((d, j) => placed.push({ node: d, x: axis + (j - half + 0.5) * slot, y }));
    g.suppressed.forEach((d, j) =>
      placed.push({ node: d, x: axis - (half + gap + j + 0.5) * slot, y }));
    g.emphasized.forEach((d, j) =>
      placed.push({ node: d, x: axis + (half + gap + j + 0.5) * slot, y }));
  });
  placed.sort((a, b) => GROUP_ORDER[a.node.group] - GROUP_ORDER[b.node.group]);
  return { nodes: placed, rows, size, slot, axis, labelWidth, pad, rowHeight };
}
