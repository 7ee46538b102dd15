// fraudstream live dashboard: polls the API's /api/dashboard/* endpoints (which read
// Prometheus) every POLL_MS and redraws in place; charts are plain SVG, no library.
"use strict";

const POLL_MS = 2000;
const CHART_MINUTES = 5;
const COLORS = ["#73bf69", "#f2cc0c", "#5794f2", "#ff9830", "#f2495c", "#b877d9", "#8ab8ff",
                "#ff7383", "#96d98d", "#ffb357", "#ca95e5", "#fade2a"];
const SVG_NS = "http://www.w3.org/2000/svg";
const W = 600, H = 170, PAD_L = 46, PAD_R = 8, PAD_T = 8, PAD_B = 18;

let panels = [];
let updates = 0;
// Each series keeps its colour for the life of the page, in its chart and its legend alike.
const seriesColors = new Map();

function colorOf(panelId, name) {
  const key = `${panelId}\u0000${name}`;
  if (!seriesColors.has(key)) {
    const used = [...seriesColors.keys()].filter((k) => k.startsWith(`${panelId}\u0000`)).length;
    seriesColors.set(key, COLORS[used % COLORS.length]);
  }
  return seriesColors.get(key);
}

// A legend without its {{label}} templates, for a query that has no series yet.
function bareLegend(legend) {
  return legend.replace(/\{\{\s*\w+\s*\}\}/g, "").trim() || "total";
}

// The smallest 1, 2 or 5 times a power of ten at or above v: a chart's top gridline.
function niceMax(v) {
  if (!(v > 0)) return 1;
  const step = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * step >= v) return m * step;
  return 10 * step;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const child of children) node.append(child);
  return node;
}

function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

// Values formatted as Grafana formats the same units.
function format(value, unit) {
  if (value === null || value === undefined) return "no data";
  if (unit === "percentunit") return (value * 100).toFixed(value * 100 >= 10 ? 1 : 2) + " %";
  if (unit === "s") {
    if (value === 0) return "0 s";
    if (value < 1) return (value * 1000).toFixed(value < 0.01 ? 2 : 0) + " ms";
    return value.toFixed(2) + " s";
  }
  const plain = Number.isInteger(value)
    ? value.toLocaleString("en-US")
    : value.toLocaleString("en-US", {
      maximumFractionDigits: Math.abs(value) < 1 ? 3 : Math.abs(value) < 10 ? 2 : 1 });
  return unit === "ops" ? plain + "/s" : plain;
}

async function getJSON(url) {
  const resp = await fetch(url, { cache: "no-store" });
  let body = null;
  try { body = await resp.json(); } catch (_) { body = null; }
  if (!resp.ok) {
    const detail = body && body.detail ? body.detail : `HTTP ${resp.status} from ${url}`;
    const error = new Error(typeof detail === "string" ? detail : JSON.stringify(detail));
    error.status = resp.status;
    throw error;
  }
  return body;
}

function build() {
  const main = document.getElementById("panels");
  main.replaceChildren();
  for (const p of panels) {
    const section = el("section", { class: `panel ${p.kind}`, id: `panel-${p.id}`,
                                    "data-panel": p.id, title: p.description });
    section.style.gridColumn = `span ${p.width}`;
    section.append(el("h2", {}, p.title));
    if (p.kind === "timeseries") {
      const chart = svg("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`,
                                 preserveAspectRatio: "none" });
      section.append(chart, el("div", { class: "legend" }));
    } else {
      section.append(el("div", { class: "body" }));
    }
    main.append(section);
  }
}

// One stat value per series of each query ("no data" for a query without series).
function renderStat(p, data, section) {
  const box = el("div", { class: "stats" });
  p.queries.forEach((q, i) => {
    const answer = data.queries[i];
    const series = answer.series.length ? answer.series
                                        : [{ name: bareLegend(q.legend), value: null }];
    for (const s of series) {
      const value = el("span", { class: "stat-value" + (s.value === null ? " nodata" : ""),
                                 "data-panel": p.id, "data-legend": q.legend,
                                 "data-series": s.name,
                                 "data-value": s.value === null ? "" : String(s.value) },
                       format(s.value, p.unit));
      box.append(el("div", { class: "stat" }, value,
                    el("span", { class: "stat-label" }, s.name || q.legend)));
    }
    if (answer.error) box.append(el("span", { class: "error" }, answer.error));
  });
  const body = section.querySelector(".body");
  // Nothing at all: say why (the panel's own explanation), not only "no data".
  const empty = data.queries.every((a) => !a.series.length && !a.error);
  if (empty && p.empty && p.empty !== "no data") {
    body.replaceChildren(box, el("p", { class: "nodata empty-why" }, p.empty));
  } else {
    body.replaceChildren(box);
  }
}

// Rows keyed by label set, one column per query (Grafana's "merge" of instant queries).
function renderTable(p, data, section) {
  const labelNames = [];
  const rows = new Map();
  data.queries.forEach((answer, i) => {
    for (const s of answer.series) {
      const labels = Object.fromEntries(Object.entries(s.labels).filter(([k]) => k !== "__name__"));
      for (const k of Object.keys(labels)) if (!labelNames.includes(k)) labelNames.push(k);
      const key = JSON.stringify(Object.entries(labels).sort());
      if (!rows.has(key)) rows.set(key, { labels, values: [] });
      rows.get(key).values[i] = s.value;
    }
  });
  const body = section.querySelector(".body");
  if (!rows.size) {
    body.replaceChildren(el("span", { class: "nodata empty-why" }, p.empty || "no data"));
    return;
  }
  const head = el("tr", {}, ...labelNames.map((n) => el("th", {}, n)),
                  ...p.queries.map((q) => el("th", {}, q.legend)));
  const table = el("table", {}, el("thead", {}, head));
  const tbody = el("tbody");
  for (const row of rows.values()) {
    const tr = el("tr", { "data-row": JSON.stringify(row.labels) });
    for (const n of labelNames) tr.append(el("td", { "data-label": n }, row.labels[n] ?? ""));
    p.queries.forEach((q, i) => {
      const v = row.values[i];
      tr.append(el("td", { "data-legend": q.legend, "data-value": v == null ? "" : String(v) },
                   v == null ? "–" : format(v, p.unit)));
    });
    tbody.append(tr);
  }
  table.append(tbody);
  body.replaceChildren(table);
}

function renderAlerts(alerts, section) {
  const body = section.querySelector(".body");
  if (!alerts.length) {
    body.replaceChildren(el("span", { class: "nodata", "data-alerts": "0" },
                            "no alerts firing"));
    return;
  }
  const table = el("table", { "data-alerts": String(alerts.length) },
                   el("thead", {}, el("tr", {}, ...["alert", "state", "severity", "since",
                                                    "summary"].map((t) => el("th", {}, t)))));
  const tbody = el("tbody");
  for (const a of alerts) {
    tbody.append(el("tr", { "data-alert": a.name },
                    el("td", {}, a.name), el("td", { class: `alert-${a.state}` }, a.state),
                    el("td", {}, a.severity), el("td", {}, a.active_at.replace(/\.\d+/, "")),
                    el("td", {}, a.summary)));
  }
  table.append(tbody);
  body.replaceChildren(table);
}

// Latest value of every series under the chart (from the summary, like a stat).
function renderLegend(p, data, section) {
  const legend = section.querySelector(".legend");
  const items = [];
  data.queries.forEach((answer, i) => {
    const series = answer.series.length ? answer.series : [];
    for (const s of series) {
      items.push(el("span", { class: "legend-item", "data-series": s.name },
                    el("span", { class: "swatch",
                                 style: `background:${colorOf(p.id, s.name)}` }),
                    s.name,
                    el("span", { class: "legend-value", "data-legend": p.queries[i].legend,
                                 "data-value": s.value === null ? "" : String(s.value) },
                       format(s.value, p.unit))));
    }
  });
  if (!items.length) items.push(el("span", { class: "nodata empty-why" }, p.empty || "no data"));
  legend.replaceChildren(...items);
}

function renderChart(p, data, section) {
  const chart = section.querySelector("svg.chart");
  const lines = data.queries.flatMap((q) => q.series);
  const values = lines.flatMap((s) => s.points.map((pt) => pt[1])).filter((v) => v !== null);
  const nodes = [];
  const max = niceMax(values.length ? Math.max(...values) : 0);
  const x = (t) => PAD_L + ((t - data.start) / (data.end - data.start)) * (W - PAD_L - PAD_R);
  const y = (v) => PAD_T + (1 - v / max) * (H - PAD_T - PAD_B);
  for (const frac of [0, 0.5, 1]) {
    nodes.push(svg("line", { class: "grid-line", x1: PAD_L, x2: W - PAD_R, y1: y(max * frac),
                             y2: y(max * frac) }));
    const label = svg("text", { x: PAD_L - 4, y: y(max * frac) + 3, "text-anchor": "end" });
    label.textContent = format(max * frac, p.unit).replace("no data", "");
    nodes.push(label);
  }
  for (const [t, anchor] of [[data.start, "start"], [data.end, "end"]]) {
    const label = svg("text", { x: x(t), y: H - 4, "text-anchor": anchor });
    label.textContent = new Date(t * 1000).toLocaleTimeString("en-GB");
    nodes.push(label);
  }
  lines.forEach((s) => {
    let d = "";
    let pen = "M";
    for (const [t, v] of s.points) {
      if (v === null) { pen = "M"; continue; }
      d += `${pen}${x(t).toFixed(1)},${y(v).toFixed(1)}`;
      pen = "L";
    }
    const path = svg("path", { d, stroke: colorOf(p.id, s.name), "data-series": s.name });
    nodes.push(path);
  });
  if (!values.length) {
    const label = svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "nodata" });
    label.textContent = "no data";
    nodes.push(label);
  }
  chart.replaceChildren(...nodes);
}

function setState(state, text) {
  document.body.dataset.state = state;
  const status = document.getElementById("status");
  status.className = `status ${state}`;
  status.textContent = text;
}

function showUnavailable(message) {
  setState("unavailable", "metrics unavailable");
  const banner = document.getElementById("unavailable");
  banner.textContent = message;
  banner.hidden = false;
  for (const section of document.querySelectorAll(".panel")) section.classList.add("stale");
}

// One panel's drawing; a panel that throws (an answer of an unexpected shape) is marked and
// left as it was, and the others are still drawn.
function renderPanel(p, summary, section) {
  if (p.kind === "stat") renderStat(p, summary.panels[p.id], section);
  else if (p.kind === "table") renderTable(p, summary.panels[p.id], section);
  else if (p.kind === "alerts") renderAlerts(summary.alerts, section);
  else renderLegend(p, summary.panels[p.id], section);
}

function tryRender(section, draw) {
  try {
    draw();
    section.classList.remove("stale", "failed");
    section.removeAttribute("data-error");
    return true;
  } catch (error) {
    console.error(`panel ${section.id} not drawn`, error);
    section.classList.add("stale", "failed");
    section.dataset.error = String(error && error.message || error);
    return false;
  }
}

async function refresh() {
  let summary;
  try {
    summary = await getJSON("/api/dashboard/summary");
  } catch (error) {
    showUnavailable(error.status === 503 ? error.message
                                         : `metrics unavailable: ${error.message}`);
    return;
  }
  const charts = await Promise.all(panels.filter((p) => p.kind === "timeseries").map((p) =>
    getJSON(`/api/dashboard/series?panel=${p.id}&minutes=${CHART_MINUTES}`)
      .catch(() => null)));
  let failed = 0;
  for (const p of panels) {
    const section = document.getElementById(`panel-${p.id}`);
    if (!tryRender(section, () => renderPanel(p, summary, section))) failed += 1;
  }
  for (const data of charts) {
    const p = data && panels.find((q) => q.id === data.panel);
    if (!p) continue;
    const section = document.getElementById(`panel-${p.id}`);
    if (!tryRender(section, () => renderChart(p, data, section))) failed += 1;
  }
  document.getElementById("unavailable").hidden = true;
  if (failed) setState("partial", `${failed} panel(s) could not be drawn`);
  else setState("live", "live");
  const time = Number(summary.time);
  document.getElementById("updated").textContent =
    "updated " + (Number.isFinite(time) ? new Date(time * 1000) : new Date())
      .toLocaleTimeString("en-GB");
  updates += 1;
  document.body.dataset.updates = String(updates);
}

// Polls forever: whatever one refresh throws, the next one is scheduled (a single bad answer
// used to stop the page for good).
async function loop() {
  try {
    await refresh();
  } catch (error) {
    console.error("dashboard refresh failed", error);
    setState("partial", `refresh failed: ${error && error.message || error}`);
  } finally {
    setTimeout(loop, POLL_MS);
  }
}

async function start() {
  try {
    panels = (await getJSON("/api/dashboard/panels")).panels;
  } catch (error) {
    showUnavailable(`the dashboard API did not answer: ${error.message}`);
    setTimeout(start, POLL_MS);
    return;
  }
  try {
    build();
  } catch (error) {
    showUnavailable(`the dashboard could not be built: ${error.message}`);
    setTimeout(start, POLL_MS);
    return;
  }
  loop();
}

start();
