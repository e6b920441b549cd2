// Pipelines page: throughput and lag charts per pipeline, refreshed from /console/api/pipelines every few seconds;
// the page reloads when a pipeline starts, stops or its dead letters change.
"use strict";

(() => {
  const POLL_MS = 5000;

  function points(series, values) {
    const out = [];
    values.forEach((value, index) => {
      if (value !== null && value !== undefined) out.push([series.start + index * series.step, Math.round(value * 100) / 100]);
    });
    return out;
  }

  // An invisible line across the whole window, so the x axis is always the window, whatever was sampled.
  function anchor(series, values) {
    return { points: [[series.start, 0], [series.start + (values.length - 1) * series.step, 0]], className: "anchor" };
  }

  function draw(root, data) {
    root.querySelectorAll("[data-pipeline]").forEach((card) => {
      const series = data.series[card.dataset.pipeline];
      if (!series) return;
      const throughput = card.querySelector('[data-chart="throughput"]');
      if (throughput) {
        Console.lineChart(throughput, [
          anchor(series, series.writtenPerSecond),
          { points: points(series, series.writtenPerSecond), className: "" },
          { points: points(series, series.readPerSecond), className: "second" },
        ], { yLabel: "/s" });
      }
      const lag = card.querySelector('[data-chart="lag"]');
      if (lag) {
        Console.lineChart(lag, [anchor(series, series.lagSeconds),
          { points: points(series, series.lagSeconds), className: "second" }], { yLabel: "s" });
      }
      card.dataset.drawn = String(Date.now());
    });
  }

  function figures(root, pipelines) {
    for (const p of pipelines) {
      const card = root.querySelector(`[data-pipeline="${CSS.escape(p.name)}"]`);
      if (!card) continue;
      for (const field of ["read", "written", "failed", "dead_lettered", "deadLetters"]) {
        const cell = card.querySelector(`[data-field="${field}"]`);
        if (cell) cell.textContent = String(p[field]);
      }
      const lag = card.querySelector('[data-field="lag"]');
      if (lag) lag.textContent = p.lagSeconds === null ? "–" : `${p.lagSeconds.toFixed(1)} s`;
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("[data-select-all]").forEach((box) => {
      box.addEventListener("change", () => {
        box.closest("table").querySelectorAll('tbody input[type="checkbox"]:not(:disabled)')
          .forEach((other) => { other.checked = box.checked; });
      });
    });
    const root = document.getElementById("pipelines");
    const initial = document.getElementById("pipelines-data");
    if (!root || !initial) return;
    let latest = JSON.parse(initial.textContent);
    draw(root, latest);
    async function poll() {
      try {
        const data = await Console.fetchJSON(root.dataset.api);
        if (data.signature !== root.dataset.signature) { window.location.reload(); return; }
        latest = data;
        draw(root, latest);
        figures(root, data.pipelines);
      } catch (error) {
        // the server restarted or the session ended: keep the page, try again later
      }
      setTimeout(poll, POLL_MS);
    }
    setTimeout(poll, POLL_MS);
    let resized;
    window.addEventListener("resize", () => { clearTimeout(resized); resized = setTimeout(() => draw(root, latest), 200); });
  });
})();
