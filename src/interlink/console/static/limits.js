// Limits & health: hourly bars over 24 hours and a live per-minute line chart, redrawn from /console/api/limits.
"use strict";

(() => {
  const POLL_MS = 5000;
  const ns = "http://www.w3.org/2000/svg";

  function svgElement(name, attributes, text) {
    const element = document.createElementNS(ns, name);
    for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
    if (text !== undefined) element.textContent = text;
    return element;
  }

  // Grouped bars: series = [{values: [...], className, label}], one group per bucket; labels under some groups.
  function barChart(svg, series, { start, step }) {
    const width = svg.clientWidth || 600, height = svg.clientHeight || 140, pad = 30, bottom = 18;
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.replaceChildren();
    const count = series[0].values.length;
    const top = Math.max(1, ...series.flatMap((s) => s.values));
    const plotWidth = width - pad - 6, plotHeight = height - bottom - 10;
    const group = plotWidth / count, barWidth = Math.max(1, (group - 2) / series.length);
    svg.append(svgElement("path", { class: "axis", d: `M${pad},6 V${height - bottom} H${width - 4}` }));
    svg.append(svgElement("text", { x: 2, y: 14 }, top.toLocaleString()));
    svg.append(svgElement("text", { x: 2, y: height - bottom }, "0"));
    series.forEach((s, index) => {
      s.values.forEach((value, bucket) => {
        if (!value) return;
        const h = Math.max(1, (value / top) * plotHeight);
        const x = pad + bucket * group + 1 + index * barWidth;
        const bar = svgElement("rect", { class: `bar ${s.className || ""}`, x: x.toFixed(1),
          y: (height - bottom - h).toFixed(1), width: barWidth.toFixed(1), height: h.toFixed(1) });
        const when = new Date((start + bucket * step) * 1000);
        bar.append(svgElement("title", {}, `${s.label}: ${value.toLocaleString()} (${when.toLocaleString()})`));
        svg.append(bar);
      });
    });
    for (let bucket = 0; bucket < count; bucket += Math.max(1, Math.round(count / 6))) {
      const when = new Date((start + bucket * step) * 1000);
      const label = `${String(when.getHours()).padStart(2, "0")}:00`;
      svg.append(svgElement("text", { x: pad + bucket * group, y: height - 4 }, label));
    }
  }

  function draw(usage) {
    const hourly = usage.hourly, minute = usage.perMinute;
    const api = document.getElementById("api-hourly");
    if (api) barChart(api, [{ values: hourly.apiRequests, label: "API requests" }], hourly);
    const events = document.getElementById("events-hourly");
    if (events) {
      barChart(events, [{ values: hourly.eventsPublished, className: "second", label: "Published" },
                        { values: hourly.eventsDelivered, className: "third", label: "Delivered" }], hourly);
    }
    const live = document.getElementById("live-chart");
    if (live) {
      const points = (values) => values.map((value, index) => [index - values.length + 1, value]);
      Console.lineChart(live, [
        { points: points(minute.apiRequests), className: "" },
        { points: points(minute.eventsPublished), className: "second" },
        { points: points(minute.eventsDelivered), className: "third" },
      ], { yLabel: "per minute" });
      live.dataset.drawn = String(Date.now());
    }
    for (const [name, total] of Object.entries(usage.totals)) {
      document.querySelectorAll(`[data-total="${name}"]`).forEach((el) => { el.textContent = total.toLocaleString(); });
    }
  }

  function updateLimits(limits) {
    for (const [name, figures] of Object.entries(limits)) {
      const meter = document.querySelector(`[data-limit="${name}"]`);
      if (!meter) continue;
      const used = figures.Max - figures.Remaining;
      meter.querySelector('[data-field="used"]').textContent = used.toLocaleString();
      meter.querySelector('[data-field="remaining"]').textContent = figures.Remaining.toLocaleString();
      meter.querySelector("progress").value = used;
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    const root = document.getElementById("limits");
    const initial = document.getElementById("limits-data");
    if (!root || !initial) return;
    let latest = JSON.parse(initial.textContent);
    draw(latest);
    const stamp = document.getElementById("live-updated");
    async function poll() {
      try {
        const data = await Console.fetchJSON(root.dataset.api);
        latest = data.usage;
        draw(latest);
        updateLimits(data.limits);
        if (stamp) stamp.textContent = `updated ${new Date().toLocaleTimeString()}`;
      } catch (error) {
        if (stamp) stamp.textContent = `not updated: ${error.message}`;
      }
      setTimeout(poll, POLL_MS);
    }
    setTimeout(poll, POLL_MS);
    let resized;
    window.addEventListener("resize", () => {
      clearTimeout(resized);
      resized = setTimeout(() => draw(latest), 200);
    });
  });
})();
