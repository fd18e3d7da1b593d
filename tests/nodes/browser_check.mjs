// Load an example workflow into a real ComfyUI frontend in headless Chromium, screenshot the
// schedule chart, then switch the loaders to the tiny random model (the CI variant: 512², 0.25M),
// queue it from the page (so `executed` messages come to this client), wait for the lineage view
// on Select Best / Decode to be drawn, and screenshot it and the whole canvas.
// usage: node browser_check.mjs <base_url> <workflow.json> <out.png>   (NODE_PATH must hold playwright-core)
// Writes <out.png> (lineage crop), <out>_schedule.png and <out>_full.png; prints one JSON line.
import { createRequire } from "module";
const require = createRequire(process.env.NODE_PATH ? process.env.NODE_PATH + "/" : import.meta.url);
const { chromium } = require("playwright-core");
import fs from "fs";

const [base, wfPath, out] = process.argv.slice(2);
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

// 2. The CI variant (tests/nodes/workflow_defs.py ci_variant), queued from this page.
const queued = await page.evaluate(async () => {
  const changed = [];
  for (const n of window.app.graph._nodes) for (const w of n.widgets || []) {
    if (["transformer", "vae", "encoder", "weights"].includes(w.name) && typeof w.value === "string") w.value = "(tiny random demo)";
    else if (w.name === "pn" && w.value === "1M") w.value = "0.25M";
    else if (["width", "height"].includes(w.name) && w.value === 1024) w.value = 512;
    else if (w.name === "decode_at_model_size" && w.value === false) w.value = true;
    else continue;
    changed.push(`${n.type}.${w.name}`);
  }
  const api = window.app.api;
  window.__ttsvarRun = { executed: [], done: null, promptId: null };
  const run = window.__ttsvarRun;
  api.addEventListener("execution_start", (e) => { run.promptId = run.promptId || e.detail?.prompt_id; });
  api.addEventListener("executed", (e) => run.executed.push(String(e.detail?.display_node || e.detail?.node)));
  api.addEventListener("execution_success", () => { run.done = "success"; });
  api.addEventListener("execution_error", (e) => { run.done = "error: " + JSON.stringify(e.detail).slice(0, 2000); });
  await window.app.queuePrompt(0, 1);
  return changed;
});
const t0 = Date.now();
await page.waitForFunction(() => window.__ttsvarRun.done, null, { timeout: 150000 });
const run = await page.evaluate(() => window.__ttsvarRun);
run.seconds = (Date.now() - t0) / 1000;
let lineage = [];
if (run.done === "success") {
  // Only visible nodes are drawn: bring Select Best / Decode into view, then wait for the drawn flag
  // (and the thumbnails) the extension sets.
  const types = ["TTSVAR_SelectBest", "TTSVAR_Decode", "TTSVAR_Sampler"];
  await page.waitForTimeout(300);
  await view(await bounds(types), 1.3);
  await page.waitForFunction((types) => {
    window.app.canvas.setDirty(true, true); window.app.canvas.draw(true, true);
    return window.app.graph._nodes.filter((n) => types.includes(n.type))
      .every((n) => n.ttsvarLineageDrawn && n.ttsvarLineageDrawn.thumbnails === (n.ttsvarLineage.thumbnails || []).length);
  }, types, { timeout: 20000, polling: 200 }).catch(() => {});
  await view(await bounds(types), 1.3);  // again: the nodes grew to fit the lineage
  await page.waitForTimeout(500);
  await page.screenshot({ path: out });
  lineage = await page.evaluate(async ([types, pid]) => {
    const hist = await (await fetch(`/history/${pid}`)).json();
    const outputs = hist[pid]?.outputs || {};
    return window.app.graph._nodes.filter((n) => types.includes(n.type)).map((n) => ({
      id: String(n.id), type: n.type, drawn: n.ttsvarLineageDrawn || null, size: [...n.size],
      shown: n.ttsvarLineage ? { events: n.ttsvarLineage.record?.events, thumbnails: n.ttsvarLineage.thumbnails.length } : null,
      history: outputs[String(n.id)]?.ttsvar_lineage?.[0]?.record?.events ?? null,
    }));
  }, [types, run.promptId]);
  await page.setViewportSize({ width: 2200, height: 1500 });  // big enough to stay above the low-quality zoom
  await page.waitForTimeout(300);
  await view(await bounds(null), 2);
  await page.waitForTimeout(500);
  await page.screenshot({ path: sibling("full") });
}
console.log(JSON.stringify({ ...info, queued, run, lineage, errors,
                             screenshots: [sibling("schedule"), out, sibling("full")] }));
await browser.close();
