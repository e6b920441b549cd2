// Jobs pages: poll the console's JSON while jobs run; move progress bars and counters in place, and reload the
// page when what it lists changes (a job finishes and gets its downloads, a callout is attempted, a job appears).
"use strict";

(() => {
  const ACTIVE_MS = 1500, IDLE_MS = 5000;

  function updateProgress(scope, job) {
    for (const field of ["recordsProcessed", "recordsFailed"]) {
      const cell = scope.querySelector(`[data-field="${field}"]`);
      if (cell && job[field] !== null && job[field] !== undefined) cell.textContent = String(job[field]);
    }
    const bar = scope.querySelector('[data-field="progress"] progress');
    const pct = scope.querySelector('[data-field="progress"] .pct');
    if (bar && job.percent !== null && job.percent !== undefined) {
      bar.max = 100;
      bar.value = job.percent;
      if (pct) pct.textContent = `${job.percent}%`;
    }
  }

  function poll(element, check) {
    let stopped = false;
    const next = (active) => { if (!stopped) setTimeout(run, active ? ACTIVE_MS : IDLE_MS); };
    async function run() {
      try {
        const data = await Console.fetchJSON(element.dataset.api);
        if (check(data)) { stopped = true; window.location.reload(); return; }
        next(element.dataset.active === "true" || data.active);
      } catch (error) {
        next(false);  // a restart or a lost session: try again later, the page stays as it is
      }
    }
    next(element.dataset.active === "true");
  }

  document.addEventListener("DOMContentLoaded", () => {
    const list = document.getElementById("jobs");
    if (list) {
      poll(list, (data) => {
        if (data.signature !== list.dataset.signature) return true;
        for (const job of data.bulk) {
          const row = list.querySelector(`tr[data-job-id="${job.id}"]`);
          if (row) updateProgress(row, job);
        }
        list.dataset.active = data.active ? "true" : "false";
        const note = document.getElementById("jobs-refresh");
        if (note) note.textContent = data.active ? "Refreshing while jobs run…" : "";
        return false;
      });
    }
    const single = document.getElementById("job");
    if (single && single.dataset.active === "true") {
      poll(single, (job) => {
        if (job.state !== single.dataset.state || !job.active) return true;
        updateProgress(single, job);
        return false;
      });
    }
  });
})();
