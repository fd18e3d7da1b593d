// TTS-VAR frontend: a schedule chart on TTS-VAR Batch Schedule; the size produced on Start State and
// the Sampler; after a run, the lineage of the search on Select Best / Decode / Sampler, drawn as a
// tree of thumbnails (text when the run kept none). Scoped to our own node classes; no global hooks.
import { app } from "../../scripts/app.js";
import { scheduleSizes, scheduleCost } from "./ttsvar_cost.js";
import { lineageModel, lineageText, name } from "./ttsvar_lineage.js";

const CHART_H = 150;
const LINEAGE_NODES = new Set(["TTSVAR_SelectBest", "TTSVAR_Decode", "TTSVAR_Sampler"]);
const SIZE_NODES = new Set(["TTSVAR_StartState", "TTSVAR_Sampler"]);
const LINE_H = 14, MIN_W = 300, MAX_AUTO_W = 1000, PAD = 6;
const fmt = (x) => (typeof x === "number" ? x.toFixed(2) : "?");

function widgetValue(node, key) {
  const w = (node.widgets || []).find((w) => w.name === key);
  return w ? w.value : undefined;
}

// Greedy word wrap to maxW pixels (continuation lines indented).
function wrap(ctx, lines, maxW) {
  const out = [];
  for (const line of lines) {
    const indent = line.match(/^ */)[0];
    let cur = "";
    for (const word of line.trimStart().split(" ")) {
      const next = cur ? cur + " " + word : indent + word;
      if (cur && ctx.measureText(next).width > maxW) { out.push(cur); cur = indent + "    " + word; } else cur = next;
    }
    out.push(cur);
  }
  return out;
}

// The node's own height (title excluded) without what we draw below it: inputs and widgets.
function baseHeight(node) {
  try { return node.computeSize()[1]; } catch (e) { return 60; }
}

function growTo(node, height) {
  if (node.size[1] < height) { node.size[1] = height; node.setDirtyCanvas(true, true); }
}

// ------------------------------------------------------------------------------ schedule chart
function drawChart(node, ctx) {
  const top = node.size[1] - CHART_H - 6, left = 10, w = node.size[0] - 20, h = CHART_H;
  ctx.save();
  ctx.fillStyle = "#1b1b1b"; ctx.fillRect(left, top, w, h);
  let sizes, cost;
  try {
    sizes = scheduleSizes(widgetValue(node, "preset"), widgetValue(node, "n"), widgetValue(node, "pn"), widgetValue(node, "custom"));
    cost = scheduleCost(sizes);
  } catch (e) {
    ctx.beginPath(); ctx.rect(left, top, w, h); ctx.clip();
    ctx.fillStyle = "#f66"; ctx.font = "12px sans-serif"; ctx.textAlign = "left";
    const lines = wrap(ctx, ["schedule: " + e.message], w - 12);
    lines.forEach((l, i) => ctx.fillText(l, left + 6, top + 20 + i * LINE_H));
    // what was drawn, for tests: the widest line must fit in the chart
    node.ttsvarChartDrawn = { error: e.message, widest: Math.max(...lines.map((l) => ctx.measureText(l).width)), room: w - 12 };
    ctx.restore(); return;
  }
  node.ttsvarChartDrawn = { error: null };
  const k = sizes.length, pad = 22, bw = (w - 2 * pad) / k;
  const maxB = Math.max(...cost.generated), maxC = Math.max(...cost.compute), maxM = Math.max(...cost.kv_memory);
  const base = top + h - 20, ph = h - 62;
  for (let i = 0; i < k; i++) {
    const x = left + pad + i * bw;
    const bh = (cost.generated[i] / maxB) * ph;
    ctx.fillStyle = "#4a7fd6"; ctx.fillRect(x + 1, base - bh, bw * 0.45, bh);              // candidates
    const ch = (cost.compute[i] / maxC) * ph;
    ctx.fillStyle = "#e0a030"; ctx.fillRect(x + bw * 0.5, base - ch, bw * 0.22, ch);         // compute
    const mh = (cost.kv_memory[i] / maxM) * ph;
    ctx.fillStyle = "#5cb85c"; ctx.fillRect(x + bw * 0.74, base - mh, bw * 0.22, mh);        // memory
    ctx.fillStyle = "#ddd"; ctx.font = "10px sans-serif"; ctx.textAlign = "center";
    ctx.fillText(String(cost.generated[i]), x + bw * 0.23, base - bh - 2);
    ctx.fillStyle = "#999"; ctx.fillText(String(i), x + bw / 2, base + 12);
  }
  ctx.textAlign = "left"; ctx.font = "11px sans-serif";
  ctx.fillStyle = "#4a7fd6"; ctx.fillText("■ candidates", left + 6, top + 13);
  ctx.fillStyle = "#e0a030"; ctx.fillText("■ compute", left + 88, top + 13);
  ctx.fillStyle = "#5cb85c"; ctx.fillText("■ KV memory", left + 160, top + 13);
  ctx.fillStyle = "#ddd";
  ctx.fillText(`total ${cost.compute_vs_best_of_n.toFixed(2)}× Best-of-N compute, peak KV ${cost.kv_vs_best_of_n.toFixed(2)}×`, left + 6, top + 27);
  ctx.restore();
}

// ------------------------------------------------------------------------------ size produced
// Below the widgets of Start State / the Sampler: the size produced, a note when it differs from the
// request, a warning (orange) when the shape had to snap to another aspect. Returns its height.
function drawSize(node, ctx, top) {
  const rep = node.ttsvarSize;
  if (!rep) return 0;
  const left = PAD, w = node.size[0] - 2 * PAD;
  ctx.save();
  ctx.font = "11px sans-serif"; ctx.textAlign = "left";
  const items = [["#9c9", "→ " + rep.text]];
  if (rep.note) items.push(["#bbb", rep.note]);
  if (rep.warning) items.push(["#f0a040", "⚠ " + rep.warning]);
  let y = top + 12, lines = 0;
  for (const [color, text] of items) {
    ctx.fillStyle = color;
    for (const l of wrap(ctx, [text], w - 8)) { ctx.fillText(l, left + 4, y); y += LINE_H; lines++; }
  }
  ctx.restore();
  node.ttsvarSizeDrawn = { lines, warning: !!rep.warning };
  return lines * LINE_H + 6;
}

// ------------------------------------------------------------------------------ lineage
// Drawn into two places with the same code: the node (compact: the tree shrinks to the node's width)
// and a full view over the page (click the box's title). A `view` holds what a drawing needs between
// frames: decoded thumbnails, the clickable cells of the last frame, the candidate shown larger.
const GROUP_COLORS = ["#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6",
                      "#bcf60c", "#fabebe", "#008080", "#e6beff"];
const HEADER_H = 22;
const NODE_SIZES = { cell: 40, final: 72 }, FULL_SIZES = { cell: 56, final: 128 };

function image(view, src) {
  let img = view.images.get(src);
  if (!img) {
    img = new Image(); img.onload = () => view.redraw(); img.src = src;
    view.images.set(src, img);
  }
  return img;
}

// Lay the rows out in a box `w` wide from `top`: per row the cell size that fits every candidate.
function layoutTree(model, left, top, w, sizes) {
  const rows = [...model.rows, model.final];
  let y = top;
  for (const row of rows) {
    const n = Math.max(1, row.cells.length), final = row.kind === "final";
    const step = Math.max(2, Math.min((final ? sizes.final : sizes.cell) + 2, Math.floor((w - 2 * PAD) / n)));
    row.c = step - (step >= 12 ? 2 : 1);
    const x0 = left + PAD + Math.max(0, (w - 2 * PAD - n * step) / 2);
    row.y = y + 15;  // the row title above the cells
    row.caption = row.c >= 26 || final;
    row.pos = row.cells.map((_, i) => ({ x: x0 + i * step, y: row.y }));
    y = row.y + row.c + (row.caption ? 13 : 0) + (row.kind === "cluster" ? 4 : 0) + (final ? 8 : 22);
  }
  return { rows, height: y - top };
}

function drawCell(view, ctx, row, cell, p) {
  const c = row.c, kept = cell.kept > 0;
  ctx.globalAlpha = kept ? 1 : 0.35;
  let loaded = 0;
  const img = cell.thumb && image(view, cell.thumb);
  if (img && img.complete && img.naturalWidth) { ctx.drawImage(img, p.x, p.y, c, c); loaded = 1; }
  else { ctx.fillStyle = "#333"; ctx.fillRect(p.x, p.y, c, c); }
  ctx.globalAlpha = 1;
  if (kept && row.kind !== "final") {
    ctx.strokeStyle = "#8ab4f8"; ctx.lineWidth = c >= 12 ? 2 : 1; ctx.strokeRect(p.x - 0.5, p.y - 0.5, c + 1, c + 1);
  }
  if (row.kind === "cluster" && cell.group !== undefined) {
    ctx.fillStyle = GROUP_COLORS[cell.group % GROUP_COLORS.length]; ctx.fillRect(p.x, p.y + c + 1, c, 3);
  }
  if (cell.kept > 1 && c >= 18) {  // drawn several times by resampling: the copies fork below
    ctx.fillStyle = "rgba(0,0,0,0.75)"; ctx.fillRect(p.x + c - 16, p.y, 16, 11);
    ctx.fillStyle = "#f0a040"; ctx.font = "9px sans-serif"; ctx.textAlign = "right";
    ctx.fillText("×" + cell.kept, p.x + c - 2, p.y + 9);
  }
  if (row.caption) {
    ctx.fillStyle = kept ? "#ddd" : "#888"; ctx.font = (row.kind === "final" ? "11px" : "9px") + " sans-serif"; ctx.textAlign = "left";
    const text = name(cell.label) + (cell.reward !== undefined && (c >= 34 || row.kind === "final") ? " " + fmt(cell.reward) : "");
    ctx.fillText(text, p.x, p.y + c + (row.kind === "cluster" ? 14 : 10), Math.max(c, 20) + (row.kind === "final" ? 60 : 0));
  }
  return loaded;
}

function drawTree(view, ctx, model, left, top, w, sizes) {
  const { rows, height } = layoutTree(model, left, top, w, sizes);
  view.hits = [];
  let loaded = 0, links = 0, cells = 0;
  ctx.save();
  rows.forEach((row, r) => {  // links first, under the thumbnails
    const next = rows[r + 1];
    if (!next) return;
    // from below the captions (name and reward), so a line never crosses their text
    const below = row.kind === "cluster" ? 4 : 0;
    const yFrom = row.y + row.c + (row.caption ? below + 12 : below), yTo = next.y;
    for (const link of row.links) {
      const a = row.pos[link.from], b = next.pos[link.to];
      if (!a || !b) continue;
      const x1 = a.x + row.c / 2, x2 = b.x + next.c / 2, ym = (yFrom + yTo) / 2;
      ctx.strokeStyle = link.copy ? "#f0a040" : "#6f8fc7"; ctx.lineWidth = link.copy ? 1.5 : 1;
      ctx.beginPath(); ctx.moveTo(x1, yFrom); ctx.bezierCurveTo(x1, ym, x2, ym, x2, yTo); ctx.stroke();
      links++;
    }
  });
  rows.forEach((row) => {
    ctx.font = "11px sans-serif"; ctx.textAlign = "left";
    ctx.fillStyle = "#1b1b1b";  // the title stays readable over the links that pass under it
    ctx.fillRect(left + PAD - 2, row.y - 15, Math.min(ctx.measureText(row.title).width, w - 2 * PAD) + 4, 13);
    ctx.fillStyle = row.kind === "final" ? "#8ab4f8" : "#aaa";
    ctx.fillText(row.title, left + PAD, row.y - 4, w - 2 * PAD);
    row.cells.forEach((cell, i) => {
      loaded += drawCell(view, ctx, row, cell, row.pos[i]);
      view.hits.push({ x: row.pos[i].x, y: row.pos[i].y, c: row.c, row, cell });
      cells++;
    });
  });
  ctx.restore();
  return { height, loaded, links, cells, rows: rows.length };
}

// The clicked candidate, larger, with its scores: a panel just below the cell (above it when the
// box ends first), inside the box [left, left + w] × [top, bottom].
function drawPick(view, ctx, left, top, w, bottom) {
  const pick = view.pick;
  if (!pick) return;
  const { row, cell } = pick, pw = Math.min(w - 2 * PAD, 330), side = Math.min(160, pw - 12);
  const lines = [
    `${name(cell.label)}${row.kind === "final" ? " (final)" : ""} · lineage id ${cell.id ?? "?"}`,
    row.kind === "final" ? "the selected candidate" : row.title,
  ];
  if (cell.reward !== undefined) lines.push(`reward ${fmt(cell.reward)}` + (cell.potential !== undefined ? ` · potential ${fmt(cell.potential)}` : ""));
  if (cell.group !== undefined) lines.push(`nearest survivor: ${name(row.after[cell.group])} (its cluster)`);
  if (row.kind !== "final") lines.push(cell.kept ? `kept${cell.kept > 1 ? " ×" + cell.kept + " (resampled copies)" : ""}` : "not kept");
  lines.push("click anywhere to close");
  const ph = side + 16 + lines.length * LINE_H;
  const x = Math.max(left + PAD, Math.min(pick.x, left + w - PAD - pw));
  let y = pick.y + pick.c + 6;
  if (y + ph > bottom) y = Math.max(top, pick.y - ph - 6);
  ctx.save();
  ctx.fillStyle = "rgba(20,20,20,0.95)"; ctx.fillRect(x, y, pw, ph);
  ctx.strokeStyle = "#8ab4f8"; ctx.lineWidth = 1; ctx.strokeRect(x, y, pw, ph);
  const img = cell.thumb && image(view, cell.thumb);
  if (img && img.complete && img.naturalWidth) {
    const s = side / Math.max(img.naturalWidth, img.naturalHeight);
    ctx.drawImage(img, x + 6, y + 6, img.naturalWidth * s, img.naturalHeight * s);
  }
  ctx.fillStyle = "#ddd"; ctx.font = "11px sans-serif"; ctx.textAlign = "left";
  lines.forEach((l, i) => ctx.fillText(l, x + 6, y + side + 20 + i * LINE_H, pw - 12));
  ctx.restore();
  view.pickDrawn = { label: cell.label, lines };
}

// A click in a view: closes the larger view if open, else opens it for the cell under `pos`.
function clickView(view, pos) {
  if (view.pick) { view.pick = null; view.redraw(); return "closed"; }
  const hit = view.hits.find((h) => pos[0] >= h.x && pos[0] <= h.x + h.c && pos[1] >= h.y && pos[1] <= h.y + h.c);
  if (!hit) return null;
  view.pick = { row: hit.row, cell: hit.cell, x: hit.x, y: hit.y, c: hit.c };
  view.redraw();
  return "picked";
}

function nodeView(node) {
  if (!node.ttsvarView) node.ttsvarView = { images: new Map(), hits: [], pick: null, redraw: () => node.setDirtyCanvas(true, true) };
  return node.ttsvarView;
}

function drawLineage(node, ctx, top) {
  const data = node.ttsvarLineage;
  if (!data) return 0;
  const rec = data.record || {};
  const left = PAD, w = node.size[0] - 2 * PAD, view = nodeView(node);
  const model = rec.error ? null : lineageModel(rec, data.thumbnails || []);
  ctx.save();
  ctx.font = "11px sans-serif"; ctx.textAlign = "left";
  let h, drawn;
  if (model && model.hasThumbnails) {
    h = HEADER_H + layoutTree(model, left, 0, w, NODE_SIZES).height + 6;
    growTo(node, top + h + 4);
    ctx.beginPath(); ctx.rect(left, top, w, h); ctx.clip();
    ctx.fillStyle = "#1b1b1b"; ctx.fillRect(left, top, w, h);
    ctx.fillStyle = "#8ab4f8";
    ctx.fillText(`lineage: ${data.title || node.type} · seed ${rec.seed} · ⤢ full view`, left + PAD, top + 14, w - 2 * PAD);
    node.ttsvarOpenBox = { x: left, y: top, w, h: HEADER_H };
    const t = drawTree(view, ctx, model, left, top + HEADER_H, w, NODE_SIZES);
    drawPick(view, ctx, left, top + HEADER_H, w, top + h);
    drawn = { mode: "tree", events: model.rows.length, rows: t.rows, cells: t.cells, links: t.links, thumbnails: t.loaded, height: h };
  } else {
    const lines = wrap(ctx, lineageText(rec), w - 12);
    h = HEADER_H + lines.length * LINE_H + 8;  // bottom padding: the last line never sits on the edge
    growTo(node, top + h + 4);
    ctx.beginPath(); ctx.rect(left, top, w, h); ctx.clip();
    ctx.fillStyle = "#1b1b1b"; ctx.fillRect(left, top, w, h);
    ctx.fillStyle = "#8ab4f8"; ctx.fillText(`lineage: ${data.title || node.type} (* = kept)`, left + PAD, top + 14);
    ctx.fillStyle = "#ddd";
    lines.forEach((l, i) => ctx.fillText(l, left + PAD, top + 14 + (i + 1) * LINE_H));
    view.hits = []; node.ttsvarOpenBox = null;
    drawn = { mode: "text", events: (rec.events || []).length, lines: lines.length, thumbnails: 0, height: h };
  }
  ctx.restore();
  node.ttsvarLineageDrawn = drawn;  // what was last drawn, for tests and debugging
  return h;
}

// The full view: the same tree over the page, as wide as the window allows (Esc or a click outside closes).
function openFullView(node) {
  document.getElementById("ttsvar-lineage-full")?.remove();
  const data = node.ttsvarLineage, rec = data.record || {};
  const model = lineageModel(rec, data.thumbnails || []);
  const widest = Math.max(1, ...model.rows.map((r) => r.cells.length));
  const w = Math.max(480, Math.min(window.innerWidth - 80, widest * (FULL_SIZES.cell + 2) + 2 * PAD + 8));
  const h = HEADER_H + layoutTree(model, 0, 0, w, FULL_SIZES).height + 8;
  const backdrop = document.createElement("div");
  backdrop.id = "ttsvar-lineage-full";
  Object.assign(backdrop.style, { position: "fixed", inset: "0", background: "rgba(0,0,0,0.6)", zIndex: 10000, overflow: "auto" });
  const canvas = document.createElement("canvas");
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
  Object.assign(canvas.style, { width: w + "px", height: h + "px", display: "block", margin: "30px auto", border: "1px solid #8ab4f8", background: "#1b1b1b" });
  backdrop.appendChild(canvas);
  document.body.appendChild(backdrop);
  const ctx = canvas.getContext("2d");
  const view = { images: new Map(), hits: [], pick: null, redraw: () => render() };
  function render() {
    const t0 = performance.now();
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = "#1b1b1b"; ctx.fillRect(0, 0, w, h);
    ctx.font = "12px sans-serif"; ctx.textAlign = "left"; ctx.fillStyle = "#8ab4f8";
    ctx.fillText(`lineage: ${data.title || node.type} · ${rec.model || "?"}, seed ${rec.seed} · schedule ${(rec.schedule || []).join(",")} · click a candidate · Esc closes`, PAD, 15, w - 2 * PAD);
    const t = drawTree(view, ctx, model, 0, HEADER_H, w, FULL_SIZES);
    drawPick(view, ctx, 0, HEADER_H, w, h);
    // what was last drawn (and how long it took), for tests and debugging
    const kept = view.hits.find((x) => x.cell.kept > 0 && x.row.kind !== "final");
    window.__ttsvarFullView = { rows: t.rows, cells: t.cells, links: t.links, thumbnails: t.loaded, width: w, height: h,
                                pick: view.pickDrawn || null, ms: performance.now() - t0,
                                kept: kept ? { x: kept.x + kept.c / 2, y: kept.y + kept.c / 2, label: kept.cell.label } : null };
  }
  const close = () => { backdrop.remove(); window.removeEventListener("keydown", onKey, true); };
  const onKey = (e) => { if (e.key === "Escape") { e.stopPropagation(); close(); } };
  window.addEventListener("keydown", onKey, true);
  backdrop.addEventListener("pointerdown", (e) => {
    e.stopPropagation();
    if (e.target !== canvas) { close(); return; }
    const r = canvas.getBoundingClientRect();
    clickView(view, [e.clientX - r.left, e.clientY - r.top]);
    if (!view.pick) view.pickDrawn = null;
    render();
  });
  render();
}

// Everything below the widgets, stacked: the size produced, then the lineage box.
function drawExtras(node, ctx) {
  const base = baseHeight(node);
  let top = base + 4;
  top += drawSize(node, ctx, top);
  const h = drawLineage(node, ctx, top);
  growTo(node, top + h + 4);
  if (node.ttsvarLineageDrawn) Object.assign(node.ttsvarLineageDrawn, { top, widgetsEnd: base });
}

function onPointer(node, pos) {
  const box = node.ttsvarOpenBox, view = nodeView(node);
  if (!view.pick && box && pos[0] >= box.x && pos[0] <= box.x + box.w && pos[1] >= box.y && pos[1] <= box.y + box.h) {
    openFullView(node);
    return true;
  }
  const hit = !view.pick && view.hits.find((h) => pos[0] >= h.x && pos[0] <= h.x + h.c && pos[1] >= h.y && pos[1] <= h.y + h.c);
  if (hit && hit.c < 14) { openFullView(node); return true; }  // too small to pick here: the full view
  return clickView(view, pos) !== null;
}

// Widen the node so that the widest row of the tree gets usable thumbnails, but only into free
// space: never over a neighbour to the right.
function preferredWidth(node, entry) {
  const events = entry.record?.events || [];
  const widest = Math.max(1, ...events.map((e) => (e.lineage_before || []).length));
  let limit = MAX_AUTO_W;
  const [x, y] = node.pos, bottom = y + node.size[1];
  for (const other of node.graph?._nodes || []) {
    if (other === node || other.pos[0] <= x) continue;
    const oTop = other.pos[1] - 40, oBottom = other.pos[1] + other.size[1];
    if (oTop < bottom + 400 && oBottom > y - 40) limit = Math.min(limit, other.pos[0] - x - 20);
  }
  return Math.max(node.size[0], Math.min(limit, Math.max(MIN_W, widest * 22 + 40)));
}

app.registerExtension({
  name: "ttsvar.frontend",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData.name === "TTSVAR_BatchSchedule") {
      const onNodeCreated = nodeType.prototype.onNodeCreated;
      nodeType.prototype.onNodeCreated = function () {
        const r = onNodeCreated?.apply(this, arguments);
        this.size[1] = Math.max(this.size[1], 170 + CHART_H);
        this.size[0] = Math.max(this.size[0], 320);
        return r;
      };
      const onDraw = nodeType.prototype.onDrawForeground;
      nodeType.prototype.onDrawForeground = function (ctx) {
        const r = onDraw?.apply(this, arguments);
        if (!this.flags?.collapsed) drawChart(this, ctx);
        return r;
      };
    }
    if (!LINEAGE_NODES.has(nodeData.name) && !SIZE_NODES.has(nodeData.name)) return;
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      const r = onExecuted?.apply(this, arguments);
      const size = message?.ttsvar_size?.[0];
      if (size) {
        this.ttsvarSize = size;
        if (size.warning) app.extensionManager?.toast?.add?.({ severity: "warn", summary: "TTS-VAR: size snapped", detail: size.warning, life: 8000 });
      }
      const entry = message?.ttsvar_lineage?.[0];
      if (entry) {
        this.ttsvarLineage = entry;
        this.ttsvarView = null;
        this.ttsvarLineageDrawn = null;
        this.size[0] = preferredWidth(this, entry);
      }
      if (size || entry) this.setDirtyCanvas(true, true);
      return r;
    };
    const onDraw = nodeType.prototype.onDrawForeground;
    nodeType.prototype.onDrawForeground = function (ctx) {
      const r = onDraw?.apply(this, arguments);
      if (!this.flags?.collapsed) drawExtras(this, ctx);
      return r;
    };
    const onMouseDown = nodeType.prototype.onMouseDown;
    nodeType.prototype.onMouseDown = function (e, pos) {
      if (!this.flags?.collapsed && this.ttsvarLineage && onPointer(this, pos)) return true;
      return onMouseDown?.apply(this, arguments);
    };
  },
});
