// The last 15 minutes as the gateway keeps them (GET /api/metrics/timeline): jobs finished per
// minute, their p95 latency and the queue depth, one point per bucket.
import { h } from "./dom.js";
import { timeChart } from "./svg.js";

// The three series of a timeline body: [{t: epoch ms, v}] each, oldest first.
export function chartSeries(timeline) {
  const perMinute = 60 / timeline.step_seconds;
  const points = timeline.points.map((p) => ({ ...p, t: Date.parse(p.at) }));
  return {
    jobs: points.map((p) => ({ t: p.t, v: p.finished * perMinute })),
    p95: points.filter((p) => p.p95_latency_ms !== null).map((p) => ({ t: p.t, v: p.p95_latency_ms / 1000 })),
    queue: points.filter((p) => p.pending !== null).map((p) => ({ t: p.t, v: p.pending })),
  };
}

export class ChartsPanel {
  constructor(root) {
    this.root = root;
  }

  render(timeline) {
    const now = Date.now();
    const spanMs = timeline.span_seconds * 1000;
    const series = chartSeries(timeline);
    const charts = [
      ["jobs per minute", series.jobs, ""],
      ["p95 latency", series.p95, " s"],
      ["queue depth", series.queue, ""],
    ];
    this.root.replaceChildren(...charts.map(([title, points, unit]) =>
      h("figure", { class: "chart-box", dataset: { chart: title, points: points.length } },
        h("figcaption", {}, title), timeChart(points, { spanMs, now, unit }))));
  }
}
