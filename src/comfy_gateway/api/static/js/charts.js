// The last 15 minutes: jobs finished per minute and their p95 latency (from the jobs the gateway
// lists), and the queue depth (sampled by this page, kept for the browser session).
import { h } from "./dom.js";
import { timeChart } from "./svg.js";

const SPAN_MS = 15 * 60 * 1000;
const MINUTE_MS = 60 * 1000;
const QUEUE_ITEM = "comfy-gateway.queue-samples";

function p95(values) {
  if (!values.length) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil(0.95 * sorted.length) - 1)];
}

// Per-minute buckets of the finished jobs in the window: [{t, count, p95}], oldest first.
export function minuteBuckets(jobs, now) {
  const buckets = [];
  for (let i = 14; i >= 0; i--) buckets.push({ t: now - i * MINUTE_MS, latencies: [], count: 0 });
  for (const job of jobs) {
    if (!job.finished_at) continue;
    const finished = Date.parse(job.finished_at);
    const age = now - finished;
    if (age < 0 || age >= SPAN_MS) continue;
    const bucket = buckets[14 - Math.floor(age / MINUTE_MS)];
    bucket.count += 1;
    if (job.status === "completed") bucket.latencies.push((finished - Date.parse(job.created_at)) / 1000);
  }
  return buckets.map((b) => ({ t: b.t, count: b.count, p95: p95(b.latencies) }));
}

export class ChartsPanel {
  constructor(root) {
    this.root = root;
    this.queue = JSON.parse(sessionStorage.getItem(QUEUE_ITEM) || "[]");
  }

  sampleQueue(depth, now) {
    this.queue.push({ t: now, v: depth });
    this.queue = this.queue.filter((p) => now - p.t < SPAN_MS);
    sessionStorage.setItem(QUEUE_ITEM, JSON.stringify(this.queue));
  }

  render(jobs, pending) {
    const now = Date.now();
    this.sampleQueue(pending, now);
    const buckets = minuteBuckets(jobs, now);
    const charts = [
      ["jobs per minute", buckets.map((b) => ({ t: b.t, v: b.count })), ""],
      ["p95 latency", buckets.map((b) => ({ t: b.t, v: b.p95 })), " s"],
      ["queue depth", this.queue, ""],
    ];
    this.root.replaceChildren(...charts.map(([title, series, unit]) =>
      h("figure", { class: "chart-box", dataset: { chart: title } },
        h("figcaption", {}, title), timeChart(series, { spanMs: SPAN_MS, now, unit }))));
  }
}
