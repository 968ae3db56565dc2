// Small DOM helpers shared by the panels.
export const $ = (selector, root = document) => root.querySelector(selector);

// An element with attributes and children; strings become text nodes (never parsed as HTML).
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export const badge = (value) => h("span", { class: `badge ${String(value).toLowerCase()}` }, value);

export function showError(target, error) {
  target.textContent = error ? String(error.message || error) : "";
  target.hidden = !error;
}

// A job's error as words: the API gives the original's string, the stored attempts an object.
export function errorText(error) {
  if (!error) return "";
  return typeof error === "string" ? error : error.message || error.code || "";
}

export function time(iso) {
  return iso ? new Date(iso).toLocaleTimeString() : "";
}
