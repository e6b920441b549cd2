// SOQL workbench: Ctrl/Cmd+Enter runs the query; the last queries are kept in this browser (localStorage)
// and can be put back in the editor or rerun with one click.
"use strict";

(() => {
  const KEY = "interlink.console.soql.history";
  const MAX = 20;

  const load = () => {
    try {
      const items = JSON.parse(localStorage.getItem(KEY) || "[]");
      return Array.isArray(items) ? items.filter((item) => item && typeof item.q === "string") : [];
    } catch (error) {
      return [];
    }
  };
  const save = (items) => {
    try { localStorage.setItem(KEY, JSON.stringify(items.slice(0, MAX))); } catch (error) { /* storage full or off */ }
  };

  function remember(q, all) {
    const text = q.trim();
    if (!text) return;
    save([{ q: text, all, at: new Date().toISOString() }, ...load().filter((item) => item.q !== text || item.all !== all)]);
  }

  document.addEventListener("DOMContentLoaded", () => {
    const form = document.getElementById("soql-form");
    if (!form) return;
    const editor = form.querySelector("textarea[name=q]");
    const all = form.querySelector("input[name=all]");
    const list = document.getElementById("soql-history");
    const empty = document.getElementById("soql-history-empty");

    const run = (action) => {
      const button = form.querySelector(`button[name=action][value=${action}]`);
      if (form.requestSubmit) form.requestSubmit(button); else button.click();
    };

    function show() {
      const items = load();
      list.replaceChildren();
      empty.hidden = items.length > 0;
      for (const item of items) {
        const entry = document.createElement("li");
        const use = document.createElement("button");
        use.type = "button";
        use.className = "history-item mono";
        use.title = item.q;
        use.textContent = item.q.replace(/\s+/g, " ");
        use.addEventListener("click", () => { editor.value = item.q; all.checked = !!item.all; editor.focus(); });
        const again = document.createElement("button");
        again.type = "button";
        again.className = "history-run";
        again.textContent = "Run";
        again.title = "Run this query again";
        again.addEventListener("click", () => { editor.value = item.q; all.checked = !!item.all; run("run"); });
        entry.append(use, again);
        if (item.all) {
          const badge = document.createElement("span");
          badge.className = "badge";
          badge.textContent = "queryAll";
          entry.append(badge);
        }
        list.append(entry);
      }
    }

    form.addEventListener("submit", (event) => {
      const action = event.submitter ? event.submitter.value : "run";
      if (action === "run" || action === "explain" || action === "export") remember(editor.value, all.checked);
    });
    editor.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        run("run");
      }
    });
    document.getElementById("soql-history-clear").addEventListener("click", () => { save([]); show(); });
    // A query that ran (this page shows its result or error) is remembered even when it came from a link.
    if (editor.value.trim()) remember(editor.value, all.checked);
    show();
  });
})();
