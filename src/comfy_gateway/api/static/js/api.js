// Talking to the gateway: every request carries the API key (kept for this browser session only).
const KEY_ITEM = "comfy-gateway.api-key";

export const apiKey = {
  get: () => sessionStorage.getItem(KEY_ITEM) || "",
  set: (value) => (value ? sessionStorage.setItem(KEY_ITEM, value) : sessionStorage.removeItem(KEY_ITEM)),
};

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

export async function request(path, options = {}) {
  const headers = new Headers(options.headers || {});
  const key = apiKey.get();
  if (key) headers.set("X-API-Key", key);
  const resp = await fetch(path, { ...options, headers });
  if (!resp.ok) {
    let body = null;
    try { body = await resp.json(); } catch { /* not JSON: the status says enough */ }
    throw new ApiError(resp.status, body);
  }
  return resp;
}

export async function getJSON(path) {
  return (await request(path)).json();
}

export async function postJSON(path, options = {}) {
  return (await request(path, { method: "POST", ...options })).json();
}

// An image the gateway serves, as an object URL (an <img src> could not send the key).
export async function imageURL(path, accept = "image/*") {
  const blob = await (await request(path, { headers: { Accept: accept } })).blob();
  return URL.createObjectURL(blob);
}

// Server-sent events read through fetch, so the key goes in a header as for every other request
// (EventSource cannot send headers). Calls onEvent(name, data) per event until the stream ends.
export async function streamEvents(path, onEvent, signal) {
  const resp = await request(path, { headers: { Accept: "text/event-stream" }, signal });
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = parseEvent(block);
      if (event) onEvent(event.name, event.data);
    }
  }
}

function parseEvent(block) {
  let name = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) name = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
  }
  if (!data.length) return null;
  return { name, data: JSON.parse(data.join("\n")) };
}
