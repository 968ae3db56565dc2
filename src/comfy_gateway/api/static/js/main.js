// The dashboard's entry point: the API key field, and one refresh of every panel every two seconds.
import { apiKey, getJSON } from "./api.js";
import { ChartsPanel } from "./charts.js";
import { $, showError } from "./dom.js";
import { JobsPanel } from "./jobs.js";
import { PoolPanel } from "./pool.js";
import { TryPanel } from "./try.js";

const REFRESH_MS = 2000;
const LISTED = 200;  // the table shows 50 of them; the sparklines use the rest

class Dashboard {
  constructor() {
    this.error = $("#error");
    this.pool = new PoolPanel($("#pool-cards"), $("#pool-error"), () => this.refresh());
    this.charts = new ChartsPanel($("#charts"));
    this.jobs = new JobsPanel($("#jobs"), () => this.refresh());
    this.tryPanel = new TryPanel($("#try"), () => this.refresh());
    this.workflows = [];
    this.busy = false;
  }

  async start() {
    const keyInput = $("#api-key");
    keyInput.value = apiKey.get();
    keyInput.addEventListener("change", () => { apiKey.set(keyInput.value.trim()); this.restart(); });
    await this.restart();
    setInterval(() => this.refresh(), REFRESH_MS);
  }

  async restart() {
    try {
      await this.tryPanel.loadWorkflows();
      this.workflows = [...this.tryPanel.workflows.keys()];
      showError(this.error, null);
    } catch (err) {
      this.fail(err);
    }
    await this.refresh();
  }

  fail(err) {
    const needsKey = err.status === 401 || err.status === 403;
    showError(this.error, needsKey ? new Error(`${err.message}: enter an API key above`) : err);
  }

  async refresh() {
    if (this.busy) return;  // a slow gateway gets one refresh at a time, not a pile of them
    this.busy = true;
    try {
      const [instances, stats, list, timeline] = await Promise.all([
        getJSON("/api/metrics/instances"), getJSON("/api/jobs/stats"), getJSON(`/api/jobs/list?limit=${LISTED}`),
        getJSON("/api/metrics/timeline")]);
      const health = overallHealth(Object.values(instances.instances));
      const overall = $("#overall");
      overall.textContent = health;
      overall.className = `badge ${health}`;
      const pending = stats.by_status.pending ?? 0;
      this.pool.render(instances.instances, pending, list.jobs);
      this.charts.render(timeline);
      this.jobs.render(list.jobs, Object.keys(instances.instances), this.workflows);
      $("#updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
      showError(this.error, null);
    } catch (err) {
      this.fail(err);
    } finally {
      this.busy = false;
    }
  }
}

// The rule of /health (every server healthy, some, none), read from the instances already fetched:
// /health itself answers 503 when degraded, which the browser would report as a failed load.
function overallHealth(servers) {
  const healthy = servers.filter((s) => s.healthy).length;
  if (!servers.length || healthy === 0) return "critical";
  return healthy === servers.length ? "healthy" : "degraded";
}

new Dashboard().start();
