// The dashboard's entry point: the API key field, and one refresh of every panel every two seconds.
import { apiKey, getJSON } from "./api.js";
import { ChartsPanel } from "./charts.js";
import { $, showError } from "./dom.js";
import { JobsPanel } from "./jobs.js";
import { PoolPanel } from "./pool.js";
import { TryPanel } from "./try.js";

const REFRESH_MS = 2000;
const LISTED = 500;

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
      const [health, instances, stats, list] = await Promise.all([
        fetchHealth(), getJSON("/api/metrics/instances"), getJSON("/api/jobs/stats"),
        getJSON(`/api/jobs/list?limit=${LISTED}`)]);
      const overall = $("#overall");
      overall.textContent = health.status;
      overall.className = `badge ${health.status}`;
      const pending = stats.by_status.pending ?? 0;
      this.pool.render(instances.instances, pending, list.jobs);
      this.charts.render(list.jobs, pending);
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

// /health answers 503 while degraded; its body is what the header shows either way.
async function fetchHealth() {
  const headers = apiKey.get() ? { "X-API-Key": apiKey.get() } : {};
  const resp = await fetch("/health", { headers });
  return resp.json();
}

new Dashboard().start();
