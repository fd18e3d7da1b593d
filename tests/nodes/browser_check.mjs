// Load an example workflow into a real ComfyUI frontend in headless Chromium and take a screenshot.
// usage: node browser_check.mjs <base_url> <workflow.json> <out.png>   (NODE_PATH must hold playwright-core)
import { createRequire } from "module";
const require = createRequire(process.env.NODE_PATH ? process.env.NODE_PATH + "/" : import.meta.url);
const { chromium } = require("playwright-core");
import fs from "fs";

const [base, wfPath, out] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
const errors = [];
// Only errors raised from extension code count (the bundled frontend logs its own unrelated ones).
page.on("pageerror", (e) => { if (/\/extensions\//.test(String(e.stack))) errors.push(String(e.stack).split("\n").slice(0, 4).join(" | ")); });
page.on("console", (m) => { if (m.type() === "error" && /ttsvar/i.test(m.text())) errors.push(m.text()); });
await page.goto(base, { waitUntil: "networkidle", timeout: 120000 });
await page.waitForFunction(() => window.app && window.app.graph, null, { timeout: 120000 });
await page.keyboard.press("Escape");
await page.waitForTimeout(500);
const wf = JSON.parse(fs.readFileSync(wfPath, "utf8"));
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
await page.waitForTimeout(1500);
await page.screenshot({ path: out });
console.log(JSON.stringify({ ...info, errors }));
await browser.close();
