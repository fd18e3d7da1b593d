// The lineage of a search as data to draw: one row per filter step (every candidate it looked at,
// with its thumbnail, reward or cluster group, and how often it was kept), the links from each
// survivor to its continuations in the next row (a resampled duplicate is a fork), and the final
// candidates. Pure functions (no DOM): tests/nodes/test_web_lineage.py runs them with node on a
// record made by the library. Every candidate is named by its lineage label (ttsvar.state.lineage_labels).

const KIND = { cluster: "cluster", resample: "resample", select: "select best" };

function count(list, x) {
  let n = 0;
  for (const v of list) if (v === x) n++;
  return n;
}

// The final reward of each current candidate, when the state's last scale was scored.
export function finalRewards(rec) {
  const rs = rec.reward_scales || [];
  if (!rs.length || rs[rs.length - 1] !== rec.next_scale - 1) return [];
  return (rec.rewards || []).map((row) => row[row.length - 1]);
}

function stepRow(e) {
  const kept = e.kept || [];
  const labels = e.labels_before || (e.lineage_before || []).map(String);
  const by = e.kind === "cluster" ? e.extractor : e.reward;
  return {
    kind: e.kind,
    scale: e.after_scale,
    title: `after scale ${e.after_scale} · ${KIND[e.kind] || e.kind}${by ? " (" + by + ")" : ""} · kept ${kept.length} of ${labels.length}`,
    after: e.labels_after || (e.lineage_after || []).map(String),  // the survivors' names as they continue
    cells: labels.map((label, i) => ({
      label,
      id: (e.lineage_before || [])[i],
      thumb: (e.thumbnails || [])[i] || null,
      reward: Array.isArray(e.rewards) ? e.rewards[i] : undefined,
      potential: Array.isArray(e.potentials) ? e.potentials[i] : undefined,
      group: Array.isArray(e.nearest_kept) ? e.nearest_kept[i] : undefined,
      kept: count(kept, i),
    })),
    // continuation j of the next row descends from candidate kept[j] of this row
    links: kept.map((parent, j) => ({
      from: parent, to: j,
      copy: (e.lineage_after || [])[j] !== (e.lineage_before || [])[parent],
    })),
  };
}

// rec: VarState.record(); finalThumbs: thumbnails of the current candidates (Decode / Sampler), or [].
export function lineageModel(rec, finalThumbs = []) {
  const events = rec.events || [];
  const rows = events.map(stepRow);
  const last = events[events.length - 1];
  const labels = rec.labels || (rec.candidates || []).map(String);
  const rewards = finalRewards(rec);
  const finalCells = labels.map((label, i) => {
    let thumb = finalThumbs[i] || null;
    if (!thumb && last && last.thumbnails) thumb = last.thumbnails[last.kept[i]] || null;
    return { label, id: (rec.candidates || [])[i], thumb, reward: rewards[i], kept: 1, final: true };
  });
  const final = { kind: "final", title: `final: ${labels.length === 1 ? "the pick" : labels.length + " candidates, best first"}`, cells: finalCells, links: [] };
  const hasThumbnails = rows.some((r) => r.cells.some((c) => c.thumb)) || finalCells.some((c) => c.thumb);
  return { rows, final, hasThumbnails };
}

const fmt = (x) => (typeof x === "number" ? x.toFixed(2) : "?");
export const name = (label) => "#" + label;

// The text view (no thumbnails): one line per step, the survivors by name, then the scores with the
// kept ones marked "*" ("*×2": drawn twice by resampling).
export function lineageText(rec) {
  if (rec.error) return [String(rec.error)];
  const model = lineageModel(rec);
  const lines = [`${rec.model || "?"}, seed ${rec.seed}, schedule ${(rec.schedule || []).join(",")}`];
  for (const row of model.rows) {
    lines.push(`${row.title}: ${row.after.map(name).join(" ")}`);
    if (row.cells.some((c) => c.reward !== undefined)) {
      lines.push("  rewards " + row.cells.map((c) => `${name(c.label)} ${fmt(c.reward)}` + (c.kept ? "*" + (c.kept > 1 ? "×" + c.kept : "") : "")).join(", "));
    }
  }
  if (model.final.cells.length) {
    lines.push("final " + model.final.cells.map((c) => name(c.label) + (c.reward !== undefined ? " " + fmt(c.reward) : "")).join(", "));
  }
  return lines;
}
