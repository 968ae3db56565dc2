// Plain SVG line charts: a sparkline for a server card, a small chart with axis labels for the
// last minutes. No library: a polyline over a scaled point list.
const NS = "http://www.w3.org/2000/svg";

function svgEl(tag, attrs) {
  const el = document.createElementNS(NS, tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, String(value));
  return el;
}

// Scaled into the box with a margin, so a flat line at the maximum is not drawn on the edge.
function points(values, width, height, max, margin = 3) {
  const top = max > 0 ? max : 1;
  const step = values.length > 1 ? width / (values.length - 1) : 0;
  const span = height - 2 * margin;
  return values.map((v, i) => `${(i * step).toFixed(1)},${(margin + span - (v / top) * span).toFixed(1)}`).join(" ");
}

export function sparkline(values, { width = 120, height = 28, label = "" } = {}) {
  const svg = svgEl("svg", { viewBox: `0 0 ${width} ${height}`, width, height, class: "sparkline",
    role: "img", "aria-label": label });
  if (values.length) {
    svg.append(svgEl("polyline", { points: points(values, width, height, Math.max(...values)),
      fill: "none", "stroke-width": 1.5 }));
  }
  return svg;
}

// series: [{t: epoch ms, v: number}], drawn over the window [now - spanMs, now].
export function timeChart(series, { spanMs, now, width = 280, height = 80, unit = "" }) {
  const svg = svgEl("svg", { viewBox: `0 0 ${width} ${height + 14}`, class: "chart", role: "img" });
  const max = Math.max(0, ...series.map((p) => p.v));
  const x = (t) => ((t - (now - spanMs)) / spanMs) * width;
  const y = (v) => height - (max > 0 ? (v / max) * (height - 4) : 0);
  svg.append(svgEl("line", { x1: 0, y1: height, x2: width, y2: height, class: "axis" }));
  if (series.length) {
    const pts = series.map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(" ");
    svg.append(svgEl("polyline", { points: pts, fill: "none", "stroke-width": 1.5 }));
    const last = series[series.length - 1];  // the newest value, visible even while it is the only one
    svg.append(svgEl("circle", { cx: x(last.t).toFixed(1), cy: y(last.v).toFixed(1), r: 2.5, class: "last" }));
  }
  const top = svgEl("text", { x: 2, y: 10, class: "tick" });
  top.textContent = `${Number.isInteger(max) ? max : max.toFixed(1)}${unit}`;
  const left = svgEl("text", { x: 2, y: height + 12, class: "tick" });
  left.textContent = `-${Math.round(spanMs / 60000)} min`;
  const right = svgEl("text", { x: width - 2, y: height + 12, class: "tick", "text-anchor": "end" });
  right.textContent = "now";
  svg.append(top, left, right);
  return svg;
}
