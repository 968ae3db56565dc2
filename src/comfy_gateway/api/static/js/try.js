// "Try it": pick or drop an image, choose a workflow and its parameters, run it as a job, follow
// its progress from the event stream, then compare input and result with a before/after slider.
import { getJSON, imageURL, postJSON, streamEvents } from "./api.js";
import { $, errorText, h, showError } from "./dom.js";

const EXTENSIONS = { png: "png", jpeg: "jpg", webp: "webp" };
const FINISHED = new Set(["completed", "failed", "deleted"]);
const STREAM_RETRIES = 5;

function paramInput(name, p) {
  const id = `param-${name}`;
  let input;
  if (p.choices) {
    input = h("select", { id, name }, p.choices.map((c) => h("option", { value: c, selected: c === p.default }, c)));
  } else if (p.type === "bool") {
    input = h("input", { id, name, type: "checkbox", checked: Boolean(p.default), value: "true" });
  } else if (p.type === "int" || p.type === "float") {
    input = h("input", { id, name, type: "number", value: p.default ?? "", min: p.min, max: p.max,
      step: p.type === "int" ? 1 : "any", required: true });
  } else {
    input = h("input", { id, name, type: "text", value: p.default ?? "" });
  }
  return h("label", { class: "param" }, h("span", {}, `${name} (${p.type})`), input);
}

export class TryPanel {
  constructor(root, onSubmitted) {
    this.root = root;
    this.onSubmitted = onSubmitted;
    this.form = $("#try-form", root);
    this.fileInput = $("#file", root);
    this.bar = $("#bar", root);
    this.status = $("#try-status", root);
    this.error = $("#try-error", root);
    this.before = $("#before", root);
    this.after = $("#after", root);
    this.workflows = new Map();
    this.file = null;
    this.bind();
  }

  bind() {
    const select = $("#workflow", this.root);
    select.addEventListener("change", () => this.showParams(select.value));
    this.fileInput.addEventListener("change", () => this.pick(this.fileInput.files[0]));
    const drop = $("#drop", this.root);
    drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (e) => {
      e.preventDefault();
      drop.classList.remove("over");
      if (e.dataTransfer.files.length) this.pick(e.dataTransfer.files[0]);
    });
    $("#slider", this.root).addEventListener("input", (e) => this.reveal(e.target.value));
    this.form.addEventListener("submit", (e) => { e.preventDefault(); this.run(); });
  }

  async loadWorkflows() {
    const { workflows } = await getJSON("/api/workflows");
    const select = $("#workflow", this.root);
    const chosen = select.value;
    this.workflows = new Map(workflows.map((wf) => [wf.name, wf]));
    select.replaceChildren(...workflows.map((wf) =>
      h("option", { value: wf.name, title: wf.description, selected: wf.name === chosen }, wf.name)));
    if ($("#params", this.root).dataset.workflow !== select.value) this.showParams(select.value);  // keep typed values
  }

  showParams(name) {
    const wf = this.workflows.get(name);
    const box = $("#params", this.root);
    box.dataset.workflow = name;
    box.replaceChildren(...Object.entries(wf ? wf.parameters : {}).map(([n, p]) => paramInput(n, p)));
    $("#workflow-description", this.root).textContent = wf ? wf.description : "";
  }

  pick(file) {
    if (!file) return;
    this.file = file;
    $("#file-name", this.root).textContent = file.name;
    this.before.src = URL.createObjectURL(file);
    this.after.removeAttribute("src");
    this.root.classList.remove("has-result");
    $("#run", this.root).disabled = false;
  }

  reveal(percent) {
    this.root.style.setProperty("--split", `${percent}%`);
  }

  setProgress(value, text) {
    const pct = Math.max(0, Math.min(100, Math.round(value)));
    this.bar.style.width = `${pct}%`;
    this.bar.parentElement.setAttribute("aria-valuenow", String(pct));
    this.status.textContent = text;
  }

  formData() {
    const data = new FormData(this.form);
    data.delete("file");
    data.set("imageFile", this.file, this.file.name);
    for (const box of this.form.querySelectorAll("#params input[type=checkbox]")) data.set(box.name, box.checked);
    return data;
  }

  async run() {
    showError(this.error, null);
    const workflow = $("#workflow", this.root).value;
    const format = $("#format", this.root).value;
    $("#run", this.root).disabled = true;
    try {
      this.setProgress(0, "uploading…");
      const job = await postJSON(`/api/run/${encodeURIComponent(workflow)}?async=true`, { body: this.formData() });
      this.onSubmitted(job.job_id);
      const last = await this.follow(job.job_id);
      if (last.status !== "completed") throw new Error(errorText(last.error) || `job ${last.status}`);
      await this.showResult(job.job_id, workflow, format);
    } catch (err) {
      showError(this.error, err);
      this.status.textContent = "";
    } finally {
      $("#run", this.root).disabled = false;
    }
  }

  // Follows the job's event stream to its end; a stream that drops is opened again (it starts with
  // the job's current status).
  async follow(jobId) {
    let last = { status: "pending" };
    for (let lost = 0; lost <= STREAM_RETRIES; lost++) {
      try {
        await streamEvents(`/api/jobs/${jobId}/events`, (name, body) => {
          if (name === "deleted") { last = { status: "deleted" }; return; }
          last = body;
          const where = body.comfyui_instance ? ` on ${body.comfyui_instance}` : "";
          this.setProgress(body.progress_percentage, `${body.status}${where} · ${body.progress_percentage} %`);
        });
      } catch (err) {
        if (err.status) throw err;  // the gateway answered (404, 401...): opening it again won't help
      }
      if (FINISHED.has(last.status)) return last;
      await new Promise((resolve) => setTimeout(resolve, 500 * (lost + 1)));
    }
    return last;
  }

  async showResult(jobId, workflow, format) {
    const url = await imageURL(`/api/jobs/${jobId}/result`);
    await new Promise((resolve, reject) => {
      this.after.onload = resolve;
      this.after.onerror = () => reject(new Error("the result is not an image this browser can show"));
      this.after.src = url;
    });
    const { naturalWidth: w, naturalHeight: ht } = this.after;
    $("#result-size", this.root).textContent = `${this.before.naturalWidth}×${this.before.naturalHeight} → ${w}×${ht} px`;
    const stem = this.file.name.replace(/\.[^.]+$/, "");
    const link = $("#download", this.root);
    link.href = url;
    link.download = `${stem}.${workflow}.${EXTENSIONS[format] || format}`;
    this.reveal(50);
    $("#slider", this.root).value = 50;
    this.root.classList.add("has-result");
  }
}
