// The ptp status page: polls status.json and redraws. Every value from the coordinator is set
// as text (never as HTML): edit ids, prompts and failure reasons come from users.
"use strict";

const refreshMilliseconds = 2000;
const palette = ["#0b63c5", "#d9480f", "#2b8a3e", "#862e9c", "#c2255c", "#1098ad", "#e67700", "#5c940d"];

/// An element with attributes and children (strings become text nodes).
function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== undefined && value !== null) node.setAttribute(name, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : String(child));
  return node;
}

function svgElement(tag, attributes = {}) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  return node;
}

function duration(seconds) {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) return "–";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

function fixed(value, digits) { return Number(value).toFixed(digits); }

function badge(state) { return element("span", { class: `badge state-${state}` }, state); }

/// Node ids in a stable order, each with its colour for the chart and the table.
function colours(nodes) {
  const map = new Map();
  [...nodes].map((node) => node.id).sort().forEach((id, index) => map.set(id, palette[index % palette.length]));
  return map;
}

function renderSummary(status) {
  const connected = status.nodes.filter((node) => node.state !== "gone");
  const busy = connected.filter((node) => node.state === "busy").length;
  const rate = connected.reduce((sum, node) => sum + node.imagesPerMinute, 0);
  const running = status.jobs.filter((job) => job.state === "running").length;
  const cards = [
    ["workers", `${connected.length}`, `${busy} busy`],
    ["images / min", fixed(rate, 1), "last 5 min"],
    ["queued tasks", `${status.queuedTasks}`, `${status.leasedTasks} running`],
    ["jobs running", `${running}`, `${status.jobs.length} listed`],
  ];
  document.getElementById("summary").replaceChildren(...cards.map(([label, value, detail]) =>
    element("div", { class: "card" }, element("div", { class: "value" }, value),
      element("div", { class: "label" }, `${label} · ${detail}`))));
}

function renderChart(status, colourOf) {
  // Drawn at the container's size in pixels, so that the labels are not stretched.
  const chart = document.getElementById("chart");
  const width = Math.max(320, chart.clientWidth || 600), height = 180, left = 34, bottom = 20, top = 8;
  const series = status.nodes.filter((node) => node.history.some((value) => value > 0) || node.state !== "gone");
  // Ten minutes of buckets when no node has a history yet.
  const buckets = series.length > 0 ? Math.max(2, ...series.map((node) => node.history.length)) : 600 / status.bucketSeconds;
  const peak = Math.max(1, ...series.flatMap((node) => node.history));
  const scale = Math.pow(10, Math.floor(Math.log10(peak)));
  const topValue = Math.ceil(peak / scale) * scale;
  const x = (index) => left + (index / Math.max(1, buckets - 1)) * (width - left - 4);
  const y = (value) => top + (1 - value / topValue) * (height - top - bottom);

  const svg = svgElement("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img",
                                  "aria-label": "Images per minute per node" });
  for (const value of [0, topValue / 2, topValue]) {
    svg.append(svgElement("line", { class: "axis", x1: left, x2: width, y1: y(value), y2: y(value) }));
    const label = svgElement("text", { class: "tick", x: left - 4, y: y(value) + 3, "text-anchor": "end" });
    label.textContent = fixed(value, value < 10 && value % 1 !== 0 ? 1 : 0);
    svg.append(label);
  }
  const minutes = (buckets * status.bucketSeconds) / 60;
  for (const [index, text] of [[0, `-${minutes} min`], [buckets - 1, "now"]]) {
    const label = svgElement("text", { class: "tick", x: x(index), y: height - 4, "text-anchor": index === 0 ? "start" : "end" });
    label.textContent = text;
    svg.append(label);
  }
  for (const node of series) {
    const points = node.history.map((value, index) => `${fixed(x(index), 1)},${fixed(y(value), 1)}`).join(" ");
    const line = svgElement("polyline", { points, stroke: colourOf.get(node.id), "data-series": node.id });
    const title = svgElement("title");
    title.textContent = node.id;
    line.append(title);
    svg.append(line);
  }
  document.getElementById("chart-window").textContent = `${minutes} min`;
  chart.replaceChildren(svg);
}

/// A colour square, styled through the CSSOM (the page's CSP refuses inline style attributes).
function swatch(colour) {
  const node = element("span", { class: "swatch" });
  node.style.background = colour;
  return node;
}

function renderNodes(status, colourOf) {
  const rows = status.nodes.map((node) => element("tr", { "data-node": node.id },
    element("td", {}, swatch(colourOf.get(node.id)), node.id),
    element("td", {}, node.host),
    element("td", { title: node.reason ?? "" }, badge(node.state)),
    element("td", { class: "wrap" }, node.state === "gone" ? `left: ${node.reason ?? "unknown"}` : node.task ?? "–"),
    element("td", { class: "number" }, fixed(node.stepsPerSecond, 2)),
    element("td", { class: "number" }, fixed(node.imagesPerMinute, 1)),
    element("td", { class: "number" }, node.done),
    element("td", { class: "number" }, node.failed),
    element("td", { class: "number" }, `${duration(node.lastHeard)} ago`)));
  if (rows.length === 0) rows.push(element("tr", {}, element("td", { colspan: 9, class: "empty" }, "no workers connected")));
  document.querySelector("#nodes tbody").replaceChildren(...rows);

  const unserved = Object.entries(status.unserved);
  const note = document.getElementById("unserved");
  note.hidden = unserved.length === 0;
  note.textContent = unserved.map(([model, seconds]) =>
    `Waiting ${duration(seconds)} for a worker serving ${model}: no connected worker serves it.`).join(" ");
}

function renderJobs(status) {
  const rows = status.jobs.map((job) => {
    const waiting = job.waiting > 0 ? ` · ${job.waiting} waiting for a worker` : "";
    const progress = job.variants ? variantsText(job.variants) : `${job.imagesDone}/${job.imagesTotal} images`;
    return element("tr", { "data-job": job.id },
      element("td", {}, job.id),
      element("td", {}, badge(job.state)),
      element("td", {}, element("progress", { max: Math.max(1, job.imagesTotal), value: job.imagesDone }),
        element("span", { class: "progress-text" }, `${progress}${waiting}`)),
      element("td", { class: "number" }, `${job.finished}/${job.edits}`),
      element("td", { class: "number" }, job.failed),
      element("td", { class: "number" }, job.state === "running" ? duration(job.eta)
        : job.duration !== null && job.duration !== undefined ? `done in ${duration(job.duration)}` : "done"),
      element("td", { class: "wrap" }, job.output));
  });
  if (rows.length === 0) rows.push(element("tr", {}, element("td", { colspan: 7, class: "empty" }, "no jobs yet")));
  document.querySelector("#jobs tbody").replaceChildren(...rows);
}

// "412/1000 variants · 38 kept · 350 rejected (clip_direction 57%, ranked 17%) · 2 failed".
function variantsText(variants) {
  const rejected = Object.values(variants.rejected).reduce((sum, count) => sum + count, 0);
  const reasons = Object.entries(variants.rejected).sort((a, b) => b[1] - a[1])
    .map(([reason, count]) => `${reason} ${Math.round(100 * count / Math.max(1, variants.done))}%`).join(", ");
  let text = `${variants.done}/${variants.total} variants · ${variants.kept} kept · ${rejected} rejected`;
  if (reasons) text += ` (${reasons})`;
  if (variants.failed > 0) text += ` · ${variants.failed} failed`;
  return text;
}

function renderFailures(status) {
  const items = status.failures.map((failure) => element("li", {},
    element("strong", {}, `${failure.job} / ${failure.edit}`), `: ${failure.reason}`));
  if (items.length === 0) items.push(element("li", { class: "empty" }, "none"));
  document.getElementById("failures").replaceChildren(...items);
}

let shownResults = "";

function renderResults(status) {
  // Redrawn only when the list changes, so that the images do not reload every poll.
  const key = status.results.map((result) => result.thumbnail).join("\n");
  if (key === shownResults) return;
  shownResults = key;
  const figures = status.results.map((result) => element("figure", {},
    element("a", { href: result.grid, title: `${result.job} / ${result.edit}: the full grid` },
      element("img", { src: result.thumbnail, alt: `grid of ${result.edit}`, loading: "lazy" })),
    element("figcaption", {}, `${result.edit} (${result.job})`)));
  if (figures.length === 0) figures.push(element("p", { class: "empty" }, "no results yet"));
  document.getElementById("results").replaceChildren(...figures);
}

function render(status) {
  const colourOf = colours(status.nodes);
  renderSummary(status);
  renderChart(status, colourOf);
  renderNodes(status, colourOf);
  renderJobs(status);
  renderFailures(status);
  renderResults(status);
  document.getElementById("updated").textContent = `updated ${new Date(status.time * 1000).toLocaleTimeString()}`;
}

function showConnection(live, detail) {
  const badgeNode = document.getElementById("connection");
  badgeNode.className = `badge ${live ? "live" : "down"}`;
  badgeNode.textContent = live ? "live" : "unreachable";
  badgeNode.title = detail ?? "";
}

async function refresh() {
  try {
    // A request that hangs (a dead network path) must not stop the polling.
    const response = await fetch("status.json", { cache: "no-store", signal: AbortSignal.timeout(5000) });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    render(await response.json());
    showConnection(true);
  } catch (error) {
    // The coordinator may be restarting: keep the last figures and try again.
    showConnection(false, String(error));
  } finally {
    setTimeout(refresh, refreshMilliseconds);
  }
}

refresh();
