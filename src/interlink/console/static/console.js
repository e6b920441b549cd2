// Interlink console: a few plain helpers shared by every page (no framework, no build step).
"use strict";

const Console = (() => {
  const csrf = () => document.body.dataset.csrf || "";

  // fetch JSON from a console endpoint; state-changing calls carry the CSRF header.
  // Errors come back in the platform's shape [{errorCode, message, fields}] and are thrown as Error.
  async function fetchJSON(url, options = {}) {
    const init = { credentials: "same-origin", headers: { Accept: "application/json" }, ...options };
    init.headers = { ...init.headers };
    if (init.body !== undefined && typeof init.body !== "string" && !(init.body instanceof FormData)) {
      init.body = JSON.stringify(init.body);
      init.headers["Content-Type"] = "application/json";
    }
    if ((init.method || "GET").toUpperCase() !== "GET") init.headers["X-CSRF-Token"] = csrf();
    const response = await fetch(url, init);
    const text = await response.text();
    const data = text ? JSON.parse(text) : null;
    if (!response.ok) {
      const first = Array.isArray(data) ? data[0] : data;
      const error = new Error(first && first.message ? `${first.errorCode}: ${first.message}` : `HTTP ${response.status}`);
      error.status = response.status;
      error.body = data;
      throw error;
    }
    return data;
  }

  // Subscribe to /console/stream/{channel} with Server-Sent Events. The browser's EventSource resends the
  // last seen id (Last-Event-ID) when it reconnects, so the server replays what was missed.
  function stream(channel, { replay = "", onEvent, onState } = {}) {
    const url = `/console/stream/${channel.split("/").filter(Boolean).map(encodeURIComponent).join("/")}` +
      (replay ? `?replay=${encodeURIComponent(replay)}` : "");
    const source = new EventSource(url, { withCredentials: true });
    source.addEventListener("open", () => onState && onState("open"));
    source.addEventListener("error", () => onState && onState(source.readyState === 2 ? "closed" : "reconnecting"));
    source.addEventListener("event", (message) => {
      onEvent && onEvent({ replayId: message.lastEventId, ...JSON.parse(message.data) });
    });
    return source;
  }

  // A small SVG line chart: series = [{points: [[x, y], ...], className}], x and y numbers.
  function lineChart(svg, series, { yLabel = "" } = {}) {
    const ns = "http://www.w3.org/2000/svg";
    const width = svg.clientWidth || 600, height = svg.clientHeight || 160, pad = 28;
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.replaceChildren();
    const all = series.flatMap((s) => s.points);
    if (!all.length) return;
    const xs = all.map((p) => p[0]), ys = all.map((p) => p[1]);
    const x0 = Math.min(...xs), x1 = Math.max(...xs) || 1, y1 = Math.max(1, ...ys);
    const sx = (x) => pad + ((x - x0) / ((x1 - x0) || 1)) * (width - pad * 1.5);
    const sy = (y) => height - pad + (-(y / y1) * (height - pad * 1.6));
    const axis = document.createElementNS(ns, "path");
    axis.setAttribute("class", "axis");
    axis.setAttribute("d", `M${pad},${pad / 2} V${height - pad} H${width - pad / 2}`);
    svg.append(axis);
    const top = document.createElementNS(ns, "text");
    top.setAttribute("x", 2); top.setAttribute("y", pad / 2 + 4);
    top.textContent = `${y1}${yLabel ? " " + yLabel : ""}`;
    svg.append(top);
    for (const s of series) {
      const path = document.createElementNS(ns, "path");
      path.setAttribute("class", `line ${s.className || ""}`);
      path.setAttribute("d", s.points.map((p, i) => `${i ? "L" : "M"}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join(" "));
      svg.append(path);
    }
  }

  // Client-side sorting for tables marked data-sortable (numbers compare as numbers).
  function sortable(table) {
    table.querySelectorAll("thead th").forEach((th, index) => {
      th.style.cursor = "pointer";
      th.addEventListener("click", () => {
        const body = table.tBodies[0];
        const ascending = th.dataset.sort !== "asc";
        table.querySelectorAll("thead th").forEach((other) => delete other.dataset.sort);
        th.dataset.sort = ascending ? "asc" : "desc";
        const rows = [...body.rows];
        const key = (row) => row.cells[index] ? row.cells[index].textContent.trim() : "";
        rows.sort((a, b) => {
          const x = key(a), y = key(b), nx = Number(x), ny = Number(y);
          const order = x !== "" && y !== "" && !isNaN(nx) && !isNaN(ny) ? nx - ny : x.localeCompare(y);
          return ascending ? order : -order;
        });
        body.append(...rows);
      });
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("table[data-sortable]").forEach(sortable);
    document.querySelectorAll("form[data-confirm]").forEach((form) => {
      form.addEventListener("submit", (event) => { if (!confirm(form.dataset.confirm)) event.preventDefault(); });
    });
  });

  return { csrf, fetchJSON, stream, lineChart, sortable };
})();
window.Console = Console;
