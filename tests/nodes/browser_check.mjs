// Load an example workflow into a real ComfyUI frontend in headless Chromium, screenshot the
// schedule chart, then switch it to a demo variant (loaders on the demo entry, side×side, N),
// queue it from the page (so `executed` messages come to this client), wait for the lineage view on
// Select Best / Decode / Sampler to be drawn, screenshot it, time the redraw, click a candidate (larger
// view with its scores), open the full view (and pick a candidate there), and screenshot the whole canvas.
// usage: node browser_check.mjs <base_url> <workflow.json> <out.png> [side] [n] [demo entry]
// (NODE_PATH must hold playwright-core). Writes <out.png> (lineage in the node), <out>_pick.png,
// <out>_tree.png (full view), <out>_tree_pick.png, <out>_schedule.png and <out>_full.png; prints one JSON line.
import { createRequire } from "module";
const require = createRequire(process.env.NODE_PATH ? process.env.NODE_PATH + "/" : import.meta.url);
const { chromium } = require("playwright-core");
import fs from "fs";

const [base, wfPath, out, sideArg, nArg, demoArg] = process.argv.slice(2);
const side = Number(sideArg || 512), n = nArg ? Number(nArg) : null, demo = demoArg || "(tiny random demo)";
// Mirror of tests/nodes/workflow_defs.py PN_FOR_SIDE / ci_variant.
const PN_FOR_SIDE = { 256: "0.06M", 512: "0.25M", 768: "0.60M", 1024: "1M" };
const sibling = (tag) => out.replace(/(\.png)?$/, `_${tag}.png`);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
const context = await browser.newContext({ viewport: { width: 1600, height: 1000 } });
// Only the local server: anything else the bundled frontend asks for is refused.
const host = new URL(base).host;
await context.route("**/*", (route) => {
  const u = new URL(route.request().url());
  return u.host === host || u.protocol === "data:" || u.protocol === "blob:" ? route.continue() : route.abort();
});
const page = await context.newPage();
const errors = [];
// Only errors raised from extension code count (the bundled frontend logs its own unrelated ones).
page.on("pageerror", (e) => { if (/\/extensions\//.test(String(e.stack))) errors.push(String(e.stack).split("\n").slice(0, 4).join(" | ")); });
page.on("console", (m) => { if (m.type() === "error" && /ttsvar/i.test(m.text())) errors.push(m.text()); });
await page.goto(base, { waitUntil: "networkidle", timeout: 120000 });
await page.waitForFunction(() => window.app && window.app.graph, null, { timeout: 120000 });
await page.keyboard.press("Escape");
await page.waitForTimeout(500);
const wf = JSON.parse(fs.readFileSync(wfPath, "utf8"));
const LINEAGE = ["TTSVAR_SelectBest", "TTSVAR_Decode", "TTSVAR_Sampler"];

// Scroll the canvas so that graph rect [x0, y0, x1, y1] fills the view (at most `maxScale`).
const view = (rect, maxScale) => page.evaluate(([[x0, y0, x1, y1], maxScale]) => {
  const c = window.app.canvas, r = c.canvas.getBoundingClientRect();
  const s = Math.min(maxScale, (r.width - 40) / (x1 - x0), (r.height - 40) / (y1 - y0));
  c.ds.scale = s; c.ds.offset = [-x0 + 20 / s, -y0 + 20 / s];
  c.setDirty(true, true); c.draw(true, true);
}, [rect, maxScale]);
const bounds = (types) => page.evaluate((types) => {
  const ns = window.app.graph._nodes.filter((n) => !types || types.includes(n.type));
  return [Math.min(...ns.map((n) => n.pos[0])), Math.min(...ns.map((n) => n.pos[1] - 40)),
          Math.max(...ns.map((n) => n.pos[0] + n.size[0])), Math.max(...ns.map((n) => n.pos[1] + n.size[1]))];
}, types);

// 1. The workflow as shipped: extension registered, nodes loaded, schedule chart drawn.
const info = await page.evaluate(async (wf) => {
  await window.app.loadGraphData(wf);
  const canvas = window.app.canvas;
  const sched = window.app.graph._nodes.find((n) => n.type === "TTSVAR_BatchSchedule");
  if (sched) { canvas.ds.scale = 1.2; canvas.ds.offset = [-sched.pos[0] + 40, -sched.pos[1] + 60]; }
  canvas.setDirty(true, true); canvas.draw(true, true);
  const exts = window.app.extensions?.map?.((e) => e.name) || [];
  return { nodes: window.app.graph._nodes.map((n) => n.type), ext: exts.filter((n) => n.startsWith("ttsvar")),
           schedSize: sched ? sched.size : null };
}, wf);
await page.waitForTimeout(1000);
await page.screenshot({ path: sibling("schedule") });
// A schedule the chart cannot draw: its error message stays inside the chart; then back as shipped.
info.chartError = await page.evaluate(async () => {
  const sched = window.app.graph._nodes.find((n) => n.type === "TTSVAR_BatchSchedule");
  if (!sched) return null;
  const w = (name) => sched.widgets.find((x) => x.name === name);
  const before = [w("preset").value, w("custom").value];
  w("preset").value = "custom"; w("custom").value = "8,8,6,6,6,4,2,2,2,1,1,9,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1";
  window.app.canvas.setDirty(true, true); window.app.canvas.draw(true, true);
  const drawn = sched.ttsvarChartDrawn;
  [w("preset").value, w("custom").value] = before;
  window.app.canvas.setDirty(true, true); window.app.canvas.draw(true, true);
  return drawn;
});
await page.screenshot({ path: sibling("schedule") });

// 2. The demo variant, queued from this page.
const queued = await page.evaluate(async ([demo, side, pn, n]) => {
  const changed = [];
  for (const node of window.app.graph._nodes) for (const w of node.widgets || []) {
    if (["transformer", "vae", "encoder", "weights"].includes(w.name) && typeof w.value === "string") w.value = demo;
    else if (w.name === "pn" && w.value === "1M") w.value = pn;
    else if (["width", "height"].includes(w.name) && w.value === 1024) w.value = side;
    else if (n !== null && w.name === "n" && ["TTSVAR_BatchSchedule", "TTSVAR_Sampler"].includes(node.type)) w.value = n;
    else if (w.name === "decode_at_model_size" && w.value === false) w.value = true;
    else continue;
    changed.push(`${node.type}.${w.name}`);
  }
  // a fresh run, not ComfyUI's cached outputs of an earlier test (cached nodes send no `executed`)
  await fetch("/free", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ free_memory: true }) });
  await new Promise((resolve) => setTimeout(resolve, 2500));  // the queue worker applies it within a second
  const api = window.app.api;
  window.__ttsvarRun = { executed: [], done: null, promptId: null };
  const run = window.__ttsvarRun;
  api.addEventListener("execution_start", (e) => { run.promptId = run.promptId || e.detail?.prompt_id; });
  api.addEventListener("executed", (e) => run.executed.push(String(e.detail?.display_node || e.detail?.node)));
  api.addEventListener("execution_success", () => { run.done = "success"; });
  api.addEventListener("execution_error", (e) => { run.done = "error: " + JSON.stringify(e.detail).slice(0, 2000); });
  await window.app.queuePrompt(0, 1);
  return changed;
}, [demo, side, PN_FOR_SIDE[side], n]);
const t0 = Date.now();
await page.waitForFunction(() => window.__ttsvarRun.done, null, { timeout: 540000, polling: 500 });
const run = await page.evaluate(() => window.__ttsvarRun);
run.seconds = (Date.now() - t0) / 1000;
let lineage = [], pick = null, redrawMs = null, size = null, fullView = null;
if (run.done === "success") {
  // Only visible nodes are drawn: bring the lineage nodes into view, then wait for the drawn flag
  // (with every thumbnail loaded) that the extension sets.
  await page.waitForTimeout(300);
  await view(await bounds(LINEAGE), 1.3);
  await page.waitForFunction((types) => {
    window.app.canvas.setDirty(true, true); window.app.canvas.draw(true, true);
    return window.app.graph._nodes.filter((n) => types.includes(n.type))
      .every((n) => n.ttsvarLineageDrawn && n.ttsvarLineageDrawn.thumbnails === (n.ttsvarLineageDrawn.cells ?? 0));
  }, LINEAGE, { timeout: 30000, polling: 200 }).catch(() => {});
  const tree = await page.evaluate((types) => {
    const ns = window.app.graph._nodes.filter((n) => types.includes(n.type) && n.ttsvarLineageDrawn);
    return ns.sort((a, b) => (b.ttsvarLineageDrawn.cells ?? 0) - (a.ttsvarLineageDrawn.cells ?? 0))[0]?.id ?? null;
  }, LINEAGE);
  const rect = tree === null ? await bounds(LINEAGE)
    : await page.evaluate((id) => { const n = window.app.graph.getNodeById(id); return [n.pos[0], n.pos[1] - 40, n.pos[0] + n.size[0], n.pos[1] + n.size[1]]; }, tree);
  await view(rect, 2);
  await page.waitForTimeout(500);
  await page.screenshot({ path: out });
  // time a full redraw of the canvas with the tree in view
  redrawMs = await page.evaluate(() => {
    const c = window.app.canvas, t = performance.now();
    for (let i = 0; i < 20; i++) { c.setDirty(true, true); c.draw(true, true); }
    return (performance.now() - t) / 20;
  });
  // click the first kept candidate of the first row: the larger view with its scores
  const target = tree === null ? null : await page.evaluate((id) => {
    const n = window.app.graph.getNodeById(id), c = window.app.canvas;
    const h = (n.ttsvarView?.hits || []).find((x) => x.cell.kept > 0 && x.row.kind !== "final");
    if (!h) return null;
    const r = c.canvas.getBoundingClientRect(), s = c.ds.scale;
    return { x: r.left + (n.pos[0] + h.x + h.c / 2 + c.ds.offset[0]) * s, y: r.top + (n.pos[1] + h.y + h.c / 2 + c.ds.offset[1]) * s, label: h.cell.label };
  }, tree);
  const redraw = () => page.evaluate(() => { window.app.canvas.setDirty(true, true); window.app.canvas.draw(true, true); });
  if (target) {
    await page.mouse.click(target.x, target.y);
    await page.waitForTimeout(400);
    await redraw();
    await page.screenshot({ path: sibling("pick") });
    pick = await page.evaluate(([id, want]) => ({ want, drawn: window.app.graph.getNodeById(id).ttsvarView?.pickDrawn || null }), [tree, target.label]);
    await page.mouse.click(target.x, target.y);  // closes it
    await page.waitForTimeout(200);
    await redraw();
  }
  // the full view: click the lineage box's title; then a candidate in it
  const head = tree === null ? null : await page.evaluate((id) => {
    const n = window.app.graph.getNodeById(id), c = window.app.canvas, b = n.ttsvarOpenBox;
    if (!b) return null;
    const r = c.canvas.getBoundingClientRect(), s = c.ds.scale;
    return { x: r.left + (n.pos[0] + b.x + 40 + c.ds.offset[0]) * s, y: r.top + (n.pos[1] + b.y + b.h / 2 + c.ds.offset[1]) * s };
  }, tree);
  if (head) {
    await page.mouse.click(head.x, head.y);
    await page.waitForFunction(() => window.__ttsvarFullView && window.__ttsvarFullView.thumbnails === window.__ttsvarFullView.cells,
                               null, { timeout: 20000, polling: 200 }).catch(() => {});
    const fv = await page.evaluate(() => window.__ttsvarFullView);
    await page.setViewportSize({ width: 1600, height: Math.min(4000, Math.max(1000, Math.ceil(fv.height) + 80)) });
    await page.waitForTimeout(300);
    await page.screenshot({ path: sibling("tree") });
    const box = await page.evaluate(() => document.querySelector("#ttsvar-lineage-full canvas").getBoundingClientRect().toJSON());
    await page.mouse.click(box.x + fv.kept.x, box.y + fv.kept.y);
    await page.waitForTimeout(300);
    await page.screenshot({ path: sibling("tree_pick") });
    fullView = { ...(await page.evaluate(() => window.__ttsvarFullView)), opened: fv };
    await page.keyboard.press("Escape");
    await page.waitForTimeout(200);
    fullView.closed = await page.evaluate(() => !document.getElementById("ttsvar-lineage-full"));
    await page.setViewportSize({ width: 1600, height: 1000 });
  }
  lineage = await page.evaluate(async ([types, pid]) => {
    const hist = await (await fetch(`/history/${pid}`)).json();
    const outputs = hist[pid]?.outputs || {};
    return window.app.graph._nodes.filter((n) => types.includes(n.type)).map((n) => ({
      id: String(n.id), type: n.type, drawn: n.ttsvarLineageDrawn || null, size: [...n.size],
      shown: n.ttsvarLineage ? { events: n.ttsvarLineage.record?.events?.map((e) => e.kind), thumbnails: n.ttsvarLineage.thumbnails.length } : null,
      history: outputs[String(n.id)]?.ttsvar_lineage?.[0]?.record?.events?.map((e) => e.kind) ?? null,
    }));
  }, [LINEAGE, run.promptId]);
  size = await page.evaluate(() => window.app.graph._nodes.filter((n) => n.ttsvarSize)
    .map((n) => ({ type: n.type, report: n.ttsvarSize, drawn: n.ttsvarSizeDrawn || null })));
  await page.setViewportSize({ width: 2200, height: 1500 });  // big enough to stay above the low-quality zoom
  await page.waitForTimeout(300);
  await view(await bounds(null), 2);
  await page.waitForTimeout(500);
  await page.screenshot({ path: sibling("full") });
}
console.log(JSON.stringify({ ...info, queued, run, lineage, pick, redrawMs, fullView, size, errors,
                             screenshots: [sibling("schedule"), out, sibling("pick"), sibling("tree"), sibling("tree_pick"), sibling("full")] }));
await browser.close();
