// TTS-VAR frontend: a schedule chart on TTS-VAR Batch Schedule, and the candidate lineage on
// Select Best / Decode / Sampler after a run. Scoped to our own node classes; no global hooks.
import { app } from "../../scripts/app.js";
import { scheduleSizes, scheduleCost } from "./ttsvar_cost.js";

const CHART_H = 150;
const LINEAGE_NODES = new Set(["TTSVAR_SelectBest", "TTSVAR_Decode", "TTSVAR_Sampler"]);

function widgetValue(node, name) {
  const w = (node.widgets || []).find((w) => w.name === name);
  return w ? w.value : undefined;
}

function drawChart(node, ctx) {
  const top = node.size[1] - CHART_H - 6, left = 10, w = node.size[0] - 20, h = CHART_H;
  ctx.save();
  ctx.fillStyle = "#1b1b1b"; ctx.fillRect(left, top, w, h);
  let sizes, cost;
  try {
    sizes = scheduleSizes(widgetValue(node, "preset"), widgetValue(node, "n"), widgetValue(node, "pn"), widgetValue(node, "custom"));
    cost = scheduleCost(sizes);
  } catch (e) {
    ctx.fillStyle = "#f66"; ctx.font = "12px sans-serif";
    ctx.fillText("schedule: " + e.message, left + 6, top + 20);
    ctx.restore(); return;
  }
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

const LINE_H = 14, THUMB = 64, THUMB_GAP = 6, MIN_W = 300;
const fmt = (x) => (typeof x === "number" ? x.toFixed(2) : "?");

// One text line per filter event: what it kept of how many, then its rewards with the kept ones
// marked "*" (resampling draws with replacement, so an index can be kept twice: "×2").
function lineageLines(rec) {
  if (rec.error) return [String(rec.error)];
  const lines = [`${rec.model || "?"}, seed ${rec.seed}, schedule ${(rec.schedule || []).join(",")}`];
  for (const e of rec.events || []) {
    const kept = e.kept || [];
    lines.push(`after scale ${e.after_scale}: ${e.kind} kept ${kept.length} of ${e.batch_before}: [${kept.join(", ")}]`);
    if (Array.isArray(e.rewards)) {
      const times = (i) => kept.filter((k) => k === i).length;
      lines.push("  rewards " + e.rewards.map((x, i) => fmt(x) + (times(i) ? "*" + (times(i) > 1 ? "×" + times(i) : "") : "")).join(" "));
    }
  }
  return lines;
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

// The final reward of each candidate, when the state's last scale was scored (captions the thumbnails).
function finalRewards(rec) {
  const rs = rec.reward_scales || [];
  if (!rs.length || rs[rs.length - 1] !== rec.next_scale - 1) return [];
  return (rec.rewards || []).map((row) => row[row.length - 1]);
}

function drawLineage(node, ctx) {
  const data = node.ttsvarLineage;
  if (!data) return;
  const rec = data.record || {};
  const left = 6, w = node.size[0] - 12;
  ctx.save();
  ctx.font = "11px sans-serif"; ctx.textAlign = "left";
  const lines = wrap(ctx, lineageLines(rec), w - 12);
  const thumbs = node.ttsvarThumbs || [];
  const perRow = Math.max(1, Math.floor((w - 12 + THUMB_GAP) / (THUMB + THUMB_GAP)));
  const rows = Math.ceil(thumbs.length / perRow);
  const h = 22 + lines.length * LINE_H + rows * (THUMB + 18);
  node.ttsvarLineageH = h;
  const need = baseHeight(node) + h;  // the box sits below the inputs and widgets; grow the node to fit
  if (node.size[1] < need) { node.size[1] = need; node.setDirtyCanvas(true, true); }
  const top = node.size[1] - h;
  ctx.beginPath(); ctx.rect(left, top, w, h - 4); ctx.clip();
  ctx.fillStyle = "#1b1b1b"; ctx.fillRect(left, top, w, h - 4);
  ctx.fillStyle = "#8ab4f8"; ctx.fillText(`lineage: ${data.title || node.type} (* = kept)`, left + 6, top + 14);
  ctx.fillStyle = "#ddd";
  lines.forEach((l, i) => ctx.fillText(l, left + 6, top + 14 + (i + 1) * LINE_H));
  const y0 = top + 22 + lines.length * LINE_H, rewards = finalRewards(rec);
  let loaded = 0;
  thumbs.forEach((img, i) => {
    const x = left + 6 + (i % perRow) * (THUMB + THUMB_GAP), y = y0 + Math.floor(i / perRow) * (THUMB + 18);
    if (img.complete && img.naturalWidth) { ctx.drawImage(img, x, y, THUMB, THUMB); loaded++; }
    ctx.fillStyle = "#bbb";
    ctx.fillText(`#${i}` + (rewards[i] !== undefined ? ` ${fmt(rewards[i])}` : ""), x, y + THUMB + 12);
  });
  ctx.restore();
  // What was last drawn, for tests and debugging.
  node.ttsvarLineageDrawn = { events: (rec.events || []).length, lines: lines.length, thumbnails: loaded, height: h };
}

// The node's own height (title excluded) without the lineage box: inputs and widgets.
function baseHeight(node) {
  try { return node.computeSize()[1]; } catch (e) { return 60; }
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
    if (LINEAGE_NODES.has(nodeData.name)) {
      const onExecuted = nodeType.prototype.onExecuted;
      nodeType.prototype.onExecuted = function (message) {
        const r = onExecuted?.apply(this, arguments);
        const entry = message?.ttsvar_lineage?.[0];
        if (entry) {
          this.ttsvarLineage = entry;
          this.ttsvarThumbs = (entry.thumbnails || []).map((src) => {
            const img = new Image(); img.onload = () => this.setDirtyCanvas(true, true); img.src = src; return img;
          });
          this.ttsvarLineageH = 0;  // recomputed (and the node grown to fit) on the next draw
          this.ttsvarLineageDrawn = null;
          this.size[0] = Math.max(this.size[0], MIN_W);
          this.setDirtyCanvas(true, true);
        }
        return r;
      };
      const onDraw = nodeType.prototype.onDrawForeground;
      nodeType.prototype.onDrawForeground = function (ctx) {
        const r = onDraw?.apply(this, arguments);
        if (!this.flags?.collapsed) drawLineage(this, ctx);
        return r;
      };
    }
  },
});
