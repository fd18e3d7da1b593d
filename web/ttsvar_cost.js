// Mirror of ttsvar.schedule (presets + BatchSchedule.cost) and the 1:1 scale grid of
// ttsvar.infinity.grids, for the schedule chart. Pure functions; tests/nodes/test_web_cost.py
// runs them with node and compares with the Python library.
export const PN_SCALES = { "0.06M": 7, "0.25M": 10, "0.60M": 12, "1M": 13 };
export const SQUARE_GRID = [1, 2, 4, 6, 8, 12, 16, 20, 24, 32, 40, 48, 64];
export const PAPER = {
  13: [8, 8, 6, 6, 6, 4, 2, 2, 2, 1, 1, 1, 1],
  12: [8, 8, 6, 6, 6, 4, 2, 2, 2, 1, 1, 1],
  10: [8, 8, 6, 6, 6, 4, 2, 2, 1, 1],
  7: [8, 8, 6, 4, 2, 1, 1],
};

export function scheduleSizes(preset, n, pn, custom) {
  const k = PN_SCALES[pn];
  if (!k) throw new Error(`unknown pn ${pn}`);
  n = Math.max(1, Math.floor(Number(n) || 1));
  if (preset === "tts-var") {
    if (!PAPER[k]) throw new Error(`tts-var has no schedule for ${k} scales`);
    return PAPER[k].map((s) => s * n);
  }
  if (preset === "best-of-n" || preset === "importance-sampling") return Array(k).fill(n);
  if (preset === "raw") return Array(k).fill(1);
  const body = String(custom || "").trim().replace(/^[\[\](){}]+|[\[\](){}]+$/g, "");
  const toks = body.split(/[\s,;]+/).filter(Boolean);
  const sizes = toks.map((t) => {
    const d = /[nN]$/.test(t) ? t.slice(0, -1) : t;
    if (!/^[+-]?\d+$/.test(d)) throw new Error(`'${t}' is not a whole number`);
    const v = parseInt(d, 10);
    if (v < 1) throw new Error("every scale needs at least 1 candidate");
    return v * n;
  });
  if (sizes.length !== k) throw new Error(`${sizes.length} entries, ${k} scales at ${pn}`);
  for (let i = 1; i < sizes.length; i++)
    if (sizes[i] > sizes[i - 1]) throw new Error(`entry ${i} increases (${sizes[i]} > ${sizes[i - 1]})`);
  return sizes;
}

export function scheduleCost(sizes, width = 2048) {
  const t = SQUARE_GRID.slice(0, sizes.length).map((s) => s * s);
  const cum = [];
  t.reduce((a, x, i) => ((cum[i] = a + x), a + x), 0);
  const c = width;
  const single = t.map((tk, i) => 24 * c * c * tk + 4 * c * tk * cum[i]);
  const total = single.reduce((a, b) => a + b, 0);
  const gen = sizes.map((_, i) => (i === 0 ? sizes[0] : sizes[i - 1]));
  const compute = gen.map((b, i) => (b * single[i]) / total);
  const kv = gen.map((b, i) => (b * cum[i]) / cum[cum.length - 1]);
  const totalCompute = compute.reduce((a, b) => a + b, 0);
  const n = sizes[sizes.length - 1];
  return { generated: gen, compute, kv_memory: kv, total_compute: totalCompute,
           compute_vs_best_of_n: totalCompute / n, peak_kv_memory: Math.max(...kv),
           kv_vs_best_of_n: Math.max(...kv) / n };
}
