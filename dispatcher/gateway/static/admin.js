// The /admin page: fetch /api/admin/stats (the HttpOnly cookie authenticates) and draw
// it as SVG. No libraries, no inline code: the gateway's CSP allows only this origin.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const STATUSES = ["sent", "skipped", "failed", "in_flight"];
const REASON_COLOURS = ["#c62828", "#ef6c00", "#6d4c41", "#ad1457", "#4527a0", "#00838f"];

function el(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

function svg(width, height) {
  return el("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
}

function sum(obj) {
  return Object.values(obj || {}).reduce((a, b) => a + b, 0);
}

function group(rows) {
  // Per type and channel, over every day in the window.
  const out = new Map();
  for (const r of rows) {
    const key = `${r.type} / ${r.channel}`;
    const g = out.get(key) || { key, type: r.type, channel: r.channel, dispatched: 0,
      sent: 0, skipped: 0, failed: 0, in_flight: 0, seen: 0, read: 0, clicked: 0 };
    g.dispatched += r.dispatched; g.sent += r.sent; g.in_flight += r.in_flight;
    g.skipped += sum(r.skipped); g.failed += sum(r.failed);
    g.seen += r.seen; g.read += r.read; g.clicked += r.clicked;
    out.set(key, g);
  }
  return [...out.values()];
}

function drawTotals(totals) {
  const dl = document.getElementById("totals");
  dl.replaceChildren();
  for (const name of ["dispatched", "sent", "skipped", "deferred", "failed", "in_flight",
    "seen", "read", "clicks"]) {
    const box = document.createElement("div");
    const dt = document.createElement("dt");
    dt.textContent = name.replace("_", " ");
    const dd = document.createElement("dd");
    dd.id = `total-${name}`;
    dd.textContent = totals[name];
    box.append(dt, dd);
    dl.append(box);
  }
}

function drawFunnel(groups) {
  const box = document.getElementById("funnel");
  const rowH = 28, label = 230, width = 900, barW = width - label - 60;
  const chart = svg(width, Math.max(rowH, groups.length * rowH) + 4);
  groups.forEach((g, i) => {
    const y = i * rowH;
    const row = el("g", { class: "funnel-row", "data-key": g.key,
      "data-dispatched": g.dispatched });
    row.append(el("text", { x: 0, y: y + 18 }, g.key));
    let x = label;
    for (const status of STATUSES) {
      const w = g.dispatched ? (g[status] / g.dispatched) * barW : 0;
      const rect = el("rect", { class: status, x, y: y + 4, width: w, height: rowH - 8,
        "data-status": status, "data-count": g[status] });
      rect.append(el("title", {}, `${status}: ${g[status]}`));
      row.append(rect);
      if (g[status] && w > 18) {
        row.append(el("text", { x: x + 4, y: y + 18, class: "count" }, g[status]));
      }
      x += w;
    }
    row.append(el("text", { x: label + barW + 6, y: y + 18, class: "total" }, g.dispatched));
    chart.append(row);
  });
  box.replaceChildren(chart);
}

function drawFailures(rows) {
  const box = document.getElementById("failures");
  const byDay = new Map();
  const reasons = new Set();
  for (const r of rows) {
    const day = byDay.get(r.day) || {};
    for (const [reason, n] of Object.entries(r.failed)) {
      day[reason] = (day[reason] || 0) + n;
      reasons.add(reason);
    }
    byDay.set(r.day, day);
  }
  const days = [...byDay.keys()].sort();
  const names = [...reasons].sort();
  const max = Math.max(1, ...days.map((d) => sum(byDay.get(d))));
  const colW = 70, height = 180, top = 20, bottom = 40;
  const chart = svg(Math.max(300, days.length * colW + 200), height + top + bottom);
  days.forEach((day, i) => {
    let y = top + height;
    const col = el("g", { class: "failure-day", "data-day": day,
      "data-total": sum(byDay.get(day)) });
    for (const [j, reason] of names.entries()) {
      const n = byDay.get(day)[reason] || 0;
      if (!n) continue;
      const h = (n / max) * height;
      y -= h;
      const rect = el("rect", { x: i * colW + 10, y, width: colW - 20, height: h,
        fill: REASON_COLOURS[j % REASON_COLOURS.length], "data-reason": reason, "data-count": n });
      rect.append(el("title", {}, `${day} ${reason}: ${n}`));
      col.append(rect);
    }
    col.append(el("text", { x: i * colW + 10, y: top + height + 16 }, day.slice(5)));
    col.append(el("text", { x: i * colW + 10, y: y - 4, class: "total" }, sum(byDay.get(day))));
    chart.append(col);
  });
  names.forEach((reason, j) => {
    const x = days.length * colW + 30;
    chart.append(el("rect", { x, y: top + j * 18, width: 12, height: 12,
      fill: REASON_COLOURS[j % REASON_COLOURS.length] }));
    chart.append(el("text", { x: x + 18, y: top + j * 18 + 11 }, reason));
  });
  box.replaceChildren(days.length ? chart : document.createTextNode("No deliveries."));
}

function drawCampaigns(campaigns) {
  const box = document.getElementById("campaigns");
  if (!campaigns.length) {
    box.replaceChildren(document.createTextNode("No campaigns."));
    return;
  }
  const rowH = 28, label = 230, barW = 500;
  const chart = svg(label + barW + 200, campaigns.length * rowH + 4);
  campaigns.forEach((c, i) => {
    const y = i * rowH;
    const row = el("g", { class: "campaign", "data-id": c.id, "data-settled": c.settled,
      "data-deliveries": c.deliveries });
    row.append(el("text", { x: 0, y: y + 18 }, `${c.name} (${c.status})`));
    row.append(el("rect", { class: "track", x: label, y: y + 4, width: barW, height: rowH - 8 }));
    const w = c.deliveries ? (c.settled / c.deliveries) * barW : 0;
    row.append(el("rect", { class: "progress", x: label, y: y + 4, width: w, height: rowH - 8 }));
    row.append(el("text", { x: label + barW + 6, y: y + 18, class: "label" },
      `${c.settled}/${c.deliveries} settled · ${c.sent} sent · ${c.failed} failed`));
    chart.append(row);
  });
  box.replaceChildren(chart);
}

function drawRates(groups) {
  const box = document.getElementById("engagement");
  const bars = [];
  for (const g of groups) {
    if (!g.sent) continue;
    if (g.channel === "in_app") {
      bars.push({ key: g.key, what: "seen", count: g.seen, of: g.sent });
      bars.push({ key: g.key, what: "read", count: g.read, of: g.sent });
    } else {
      bars.push({ key: g.key, what: "clicked", count: g.clicked, of: g.sent });
    }
  }
  const rowH = 24, label = 300, barW = 400;
  const chart = svg(label + barW + 160, Math.max(rowH, bars.length * rowH) + 4);
  bars.forEach((b, i) => {
    const y = i * rowH;
    const rate = b.count / b.of;
    const row = el("g", { class: "rate-row", "data-key": b.key, "data-what": b.what,
      "data-count": b.count, "data-of": b.of });
    row.append(el("text", { x: 0, y: y + 16 }, `${b.key} ${b.what}`));
    row.append(el("rect", { class: "track", x: label, y: y + 4, width: barW, height: rowH - 8 }));
    row.append(el("rect", { class: "rate", x: label, y: y + 4, width: rate * barW,
      height: rowH - 8 }));
    row.append(el("text", { x: label + barW + 6, y: y + 16, class: "label" },
      `${Math.round(rate * 100)}% (${b.count}/${b.of})`));
    chart.append(row);
  });
  box.replaceChildren(bars.length ? chart : document.createTextNode("Nothing sent."));
}

function drawTable(rows) {
  const body = document.querySelector("#rows tbody");
  body.replaceChildren();
  const reasons = (o) => Object.entries(o).map(([k, v]) => `${k}=${v}`).join(" ") || "0";
  for (const r of rows) {
    const tr = document.createElement("tr");
    for (const v of [r.day, r.type, r.channel, r.dispatched, r.sent, reasons(r.skipped),
      r.deferred, reasons(r.failed), r.latency_p50 ?? "", r.latency_p95 ?? "", r.seen, r.read,
      r.clicks]) {
      const td = document.createElement("td");
      td.textContent = String(v);
      tr.append(td);
    }
    body.append(tr);
  }
}

async function load() {
  const status = document.getElementById("status");
  const since = document.getElementById("since").value;
  status.textContent = "loading";
  status.className = "status";
  const started = performance.now();
  const answer = await fetch("/api/admin/stats" + (since ? `?since=${since}` : ""),
    { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (answer.status === 401 || answer.status === 403) {
    window.location.assign("/admin");
    return;
  }
  if (!answer.ok) {
    status.textContent = `error ${answer.status}`;
    status.className = "status error";
    return;
  }
  const report = await answer.json();
  const groups = group(report.rows);
  drawTotals(report.totals);
  drawFunnel(groups);
  drawFailures(report.rows);
  drawCampaigns(report.campaigns);
  drawRates(groups);
  drawTable(report.rows);
  status.textContent = "ready";
  document.body.dataset.renderMs = String(Math.round(performance.now() - started));
}

document.getElementById("since").addEventListener("change", load);
load();
