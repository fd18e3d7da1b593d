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

function drawLineage(node, ctx) {
  const data = node.ttsvarLineage;
  if (!data) return;
  const rec = data.record || {};
  const events = rec.events || [];
  const lines = events.map((e) => {
    const r = e.rewards ? " rewards " + e.rewards.map((x) => x.toFixed(2)).join(",") : "";
    return `after scale ${e.after_scale}: ${e.kind} kept [${(e.kept || []).join(",")}] of ${e.batch_before}${r}`;
  });
  const top = node.size[1] - node.ttsvarLineageH;
  ctx.save();
  ctx.fillStyle = "#1b1b1b"; ctx.fillRect(6, top, node.size[0] - 12, node.ttsvarLineageH - 4);
  ctx.fillStyle = "#ddd"; ctx.font = "11px sans-serif";
  ctx.fillText(`lineage (${rec.model || "?"}, seed ${rec.seed}) schedule ${(rec.schedule || []).join(",")}`, 12, top + 14);
  lines.forEach((l, i) => ctx.fillText(l, 12, top + 30 + i * 14));
  const y = top + 36 + lines.length * 14;
  (node.ttsvarThumbs || []).forEach((img, i) => {
    if (img.complete) ctx.drawImage(img, 12 + i * 68, y, 64, 64);
  });
  ctx.restore();
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
          const n = (entry.record?.events || []).length;
          this.ttsvarLineageH = 44 + n * 14 + (this.ttsvarThumbs.length ? 70 : 0);
          this.size[1] = Math.max(this.size[1], 60 + this.ttsvarLineageH);
          this.size[0] = Math.max(this.size[0], 12 + Math.max(360, this.ttsvarThumbs.length * 68));
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
