// The pool: a card per ComfyUI server with its health, breaker, load, warm models and VRAM when
// the gateway reports them, and a sparkline of its recent service times.
import { postJSON } from "./api.js";
import { badge, h, showError } from "./dom.js";
import { sparkline } from "./svg.js";

const GIB = 1024 ** 3;

function vramLine(placement) {
  const vram = placement.vram || {};
  const free = vram.free_bytes;
  const total = vram.total_bytes;
  if (free === undefined || !total) return null;
  const used = Math.max(0, total - free);
  return h("div", { class: "vram", title: `${(used / GIB).toFixed(1)} of ${(total / GIB).toFixed(1)} GiB used` },
    h("span", {}, "VRAM"),
    h("meter", { min: 0, max: total, value: used }),
    h("span", {}, `${(free / GIB).toFixed(1)} GiB free`));
}

function warmModels(placement) {
  const models = placement.warm_models;
  if (!Array.isArray(models) || !models.length) return null;
  return h("div", { class: "models" }, "warm: ", models.map((m) => h("span", { class: "chip" }, String(m))));
}

// Service times (seconds) of the server's most recent finished jobs, oldest first.
export function serviceTimes(jobs, server, count = 30) {
  return jobs
    .filter((j) => j.comfyui_instance === server && j.status === "completed" && j.processing_time_seconds != null)
    .slice(0, count)
    .reverse()
    .map((j) => j.processing_time_seconds);
}

export class PoolPanel {
  constructor(root, errorBox, refresh) {
    this.root = root;
    this.errorBox = errorBox;
    this.refresh = refresh;
  }

  render(instances, pending, jobs) {
    const cards = Object.entries(instances).sort(([a], [b]) => a.localeCompare(b))
      .map(([name, view]) => this.card(name, view, pending, jobs));
    this.root.replaceChildren(...cards);
  }

  card(name, view, pending, jobs) {
    const breaker = view.circuit_breaker || "closed";
    const times = serviceTimes(jobs, name);
    const average = times.length ? times.reduce((a, b) => a + b, 0) / times.length : null;
    const placement = view.placement || {};  // what the dispatcher knows of the server, when it says
    const queued = placement.queued_here;
    return h("article", { class: "server", dataset: { server: name } },
      h("header", {}, h("b", {}, name), badge(view.healthy ? "healthy" : "unhealthy"), badge(breaker)),
      h("div", { class: "load" },
        h("span", {}, `running ${view.active_jobs ?? 0}`),
        h("span", {}, queued === undefined ? `pool queue ${pending}` : `queued ${queued}`),
        h("span", {}, `done ${view.total_jobs ?? 0}`)),
      warmModels(placement), vramLine(placement),
      h("div", { class: "spark" }, sparkline(times, { label: `service times of ${name}` }),
        h("span", {}, average === null ? "no jobs yet" : `avg ${average.toFixed(2)} s`)),
      h("div", { class: "actions" },
        h("button", { type: "button", class: "open-breaker", disabled: breaker === "open",
          onclick: () => this.setBreaker(name, "open") }, "Open breaker"),
        h("button", { type: "button", class: "close-breaker", disabled: breaker === "closed",
          onclick: () => this.setBreaker(name, "close") }, "Close breaker")));
  }

  async setBreaker(name, action) {
    try {
      await postJSON(`/api/circuit-breakers/${encodeURIComponent(name)}/${action}`);
      showError(this.errorBox, null);
      this.refresh();
    } catch (err) {
      showError(this.errorBox, err.status === 403 ? new Error("changing a breaker needs an admin key") : err);
    }
  }
}
