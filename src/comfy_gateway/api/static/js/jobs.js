// Jobs: the table (filtered by status, type, server and tenant, with thumbnails of input and
// result), and a job's timeline in a dialog with a cancel button.
import { getJSON, imageURL, request } from "./api.js";
import { $, badge, errorText, h, showError, time } from "./dom.js";

const SHOWN = 50;
const THUMB = 64;
const tenantOf = (job) => job.tenant ?? null;
const placementOf = (job) => (job.placement && job.placement.reason) || null;

function fromEpoch(at) {
  return typeof at === "number" ? new Date(at * 1000).toISOString() : at;
}

// The steps of a job's life, oldest first: [{step, at, detail, state}].
export function timelineOf(job) {
  const steps = [{ step: "queued", at: job.created_at, detail: `type ${job.type}` }];
  const failures = job.attempts_history || [];
  if (job.started_at) {  // the first claim: a retried job went to the server of its first attempt
    const first = failures.length ? failures[0].instance : job.comfyui_instance;
    const waited = job.queue_wait_seconds == null ? "" : ` after ${job.queue_wait_seconds.toFixed(2)} s queued`;
    steps.push({ step: "dispatched", at: job.started_at, detail: `to ${first || "?"}${waited}` });
  }
  for (const attempt of failures) {
    const reason = errorText(attempt.error);
    steps.push({ step: `attempt ${attempt.attempt} failed`, at: fromEpoch(attempt.at),
      detail: `on ${attempt.instance || "?"}: ${reason}`, state: "failed" });
  }
  if (failures.length && job.comfyui_instance) {
    steps.push({ step: `attempt ${job.attempt}`, at: null, detail: `on ${job.comfyui_instance}` });
  }
  if (placementOf(job)) steps.push({ step: "placement", at: null, detail: String(placementOf(job)) });
  if (job.status === "processing") {
    steps.push({ step: "running", at: null, detail: `attempt ${job.attempt}, ${job.progress_percentage} %`,
      state: "processing" });
  }
  if (job.status === "completed" || job.status === "failed") {
    const took = job.processing_time_seconds == null ? "" : `in ${job.processing_time_seconds.toFixed(2)} s`;
    const why = job.error ? ` · ${errorText(job.error)}` : "";
    steps.push({ step: job.status === "completed" ? "done" : "failed", at: job.finished_at,
      detail: `${took}${why}`, state: job.status });
  }
  return steps;
}

export class JobsPanel {
  constructor(root, refresh) {
    this.root = root;
    this.refresh = refresh;
    this.body = $("#jobs-body", root);
    this.dialog = $("#job-dialog");
    this.thumbs = new Map();
    this.openJob = null;
    for (const select of root.querySelectorAll(".filters select, .filters input")) {
      select.addEventListener("input", () => this.refresh());
    }
    $("#dialog-close", this.dialog).addEventListener("click", () => this.close());
    $("#dialog-cancel", this.dialog).addEventListener("click", () => this.cancel(this.openJob));
  }

  filters() {
    const value = (name) => $(`[name=${name}]`, this.root).value.trim();
    return { status: value("status"), type: value("type"), server: value("server"), tenant: value("tenant") };
  }

  matches(job, f) {
    return (!f.status || job.status === f.status) && (!f.type || job.type === f.type)
      && (!f.server || job.comfyui_instance === f.server) && (!f.tenant || tenantOf(job) === f.tenant);
  }

  // Keeps each filter's choices to the values seen, plus the one chosen.
  fillChoices(name, values) {
    const select = $(`select[name=${name}]`, this.root);
    const chosen = select.value;
    const all = [...new Set([...values, chosen].filter(Boolean))].sort();
    if (select.dataset.choices === all.join("\n")) return;  // rebuilding would close an open list
    select.dataset.choices = all.join("\n");
    select.replaceChildren(h("option", { value: "" }, "all"),
      ...all.map((v) => h("option", { value: v, selected: v === chosen }, v)));
  }

  render(jobs, servers, workflows) {
    this.fillChoices("type", [...workflows, ...jobs.map((j) => j.type)]);
    this.fillChoices("server", servers);
    const f = this.filters();
    const shown = jobs.filter((j) => this.matches(j, f)).slice(0, SHOWN);
    this.body.replaceChildren(...shown.map((job) => this.row(job)));
    this.forgetThumbs(new Set(shown.map((j) => j.job_id)));
    $("#jobs-count", this.root).textContent = `${shown.length} shown`;
    const open = this.openJob && jobs.find((j) => j.job_id === this.openJob);
    if (open) this.showTimeline(open);
  }

  row(job) {
    const unfinished = job.status === "pending" || job.status === "processing";
    return h("tr", { dataset: { job: job.job_id, status: job.status }, onclick: () => this.open(job.job_id) },
      h("td", { title: job.job_id }, h("code", {}, job.job_id.slice(0, 8))),
      h("td", {}, this.thumb(job, "input")),
      h("td", {}, job.status === "completed" ? this.thumb(job, "result") : ""),
      h("td", {}, job.type), h("td", {}, badge(job.status)),
      h("td", {}, `${job.status === "completed" ? 100 : job.progress_percentage} %`),
      h("td", {}, job.comfyui_instance || ""), h("td", {}, tenantOf(job) || ""),
      h("td", {}, time(job.created_at)),
      h("td", {}, unfinished ? h("button", { type: "button", class: "cancel",
        onclick: (e) => { e.stopPropagation(); this.cancel(job.job_id); } }, "Cancel") : ""));
  }

  thumb(job, which) {
    const key = `${job.job_id}/${which}`;
    const img = h("img", { class: "thumb", alt: `${which} of ${job.job_id}`, width: THUMB, height: THUMB,
      dataset: { which } });
    if (!this.thumbs.has(key)) {
      this.thumbs.set(key, imageURL(`/api/jobs/${job.job_id}/preview/${which}?size=${THUMB}`).catch(() => null));
    }
    this.thumbs.get(key).then((url) => { if (url) img.src = url; });
    return img;
  }

  // Object URLs hold their image until revoked: keep only those of the rows on screen.
  forgetThumbs(shownIds) {
    for (const [key, pending] of this.thumbs) {
      if (shownIds.has(key.split("/")[0])) continue;
      this.thumbs.delete(key);
      pending.then((url) => url && URL.revokeObjectURL(url));
    }
  }

  async open(jobId) {
    this.openJob = jobId;
    try {
      this.showTimeline(await getJSON(`/api/jobs/${jobId}/info`));
      if (!this.dialog.open) this.dialog.showModal();
    } catch (err) {
      showError($("#jobs-error", this.root), err);
    }
  }

  showTimeline(job) {
    $("#dialog-title", this.dialog).textContent = `job ${job.job_id}`;
    $("#timeline", this.dialog).replaceChildren(...timelineOf(job).map((s) =>
      h("li", { class: s.state || "", dataset: { step: s.step } },
        h("b", {}, s.step), h("time", {}, time(s.at)), h("span", {}, s.detail))));
    const unfinished = job.status === "pending" || job.status === "processing";
    $("#dialog-cancel", this.dialog).textContent = unfinished ? "Cancel job" : "Delete job";
  }

  close() {
    this.openJob = null;
    this.dialog.close();
  }

  async cancel(jobId) {
    try {
      await request(`/api/jobs/${jobId}`, { method: "DELETE" });
      showError($("#jobs-error", this.root), null);
      if (this.openJob === jobId) this.close();
      this.refresh();
    } catch (err) {
      showError($("#jobs-error", this.root), err);
    }
  }
}
