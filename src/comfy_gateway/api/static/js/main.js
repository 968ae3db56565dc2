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

  // Each panel draws what it could read: with a key that may not see everything (the job list and
  // the metrics need an admin key), "Try it" and the panels it may read still work.
  async refresh() {
    if (this.busy) return;  // a slow gateway gets one refresh at a time, not a pile of them
    this.busy = true;
    try {
      const [instances, stats, list, timeline] = await Promise.allSettled([
        getJSON("/api/metrics/instances"), getJSON("/api/jobs/stats"), getJSON(`/api/jobs/list?limit=${LISTED}`),
        getJSON("/api/metrics/timeline")]);
      const jobs = list.status === "fulfilled" ? list.value.jobs : [];
      const servers = instances.status === "fulfilled" ? instances.value.instances : null;
      if (servers) this.showServers(servers, stats.status === "fulfilled" ? stats.value : null, jobs);
      if (timeline.status === "fulfilled") this.charts.render(timeline.value);
      showError($("#pool-error"), panelError(instances, timeline));
      if (list.status === "fulfilled") this.jobs.render(jobs, Object.keys(servers || {}), this.workflows);
      showError($("#jobs-error"), panelError(list));
      const failed = [instances, stats, list, timeline].find((r) => r.status === "rejected");
      if (failed) this.fail(failed.reason); else showError(this.error, null);
      $("#updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
    } finally {
      this.busy = false;
    }
  }

  showServers(servers, stats, jobs) {
    const health = overallHealth(Object.values(servers));
    const overall = $("#overall");
    overall.textContent = health;
    overall.className = `badge ${health}`;
    this.pool.render(servers, stats ? stats.by_status.pending ?? 0 : "?", jobs);
  }
}

function panelError(...results) {
  const failed = results.find((r) => r.status === "rejected");
  if (!failed) return null;
  return failed.reason.status === 403 ? new Error("this needs an admin key") : failed.reason;
}

// The rule of /health (every server healthy, some, none), read from the instances already fetched:
// /health itself answers 503 when degraded, which the browser would report as a failed load.
function overallHealth(servers) {
  const healthy = servers.filter((s) => s.healthy).length;
  if (!servers.length || healthy === 0) return "critical";
  return healthy === servers.length ? "healthy" : "degraded";
}

new Dashboard().start();
