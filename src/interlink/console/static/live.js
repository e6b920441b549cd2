// Live pages of the UI Update pattern: a case that shows payments and other people's edits as they happen
// (without touching what the user is typing), and a manager's alerts when their reps close cases successfully.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const SYSTEM_FIELDS = new Set(["LastModifiedDate", "LastModifiedById", "SystemModstamp", "CreatedDate",
    "CreatedById", "IsDeleted"]);

  // An EventSource on a live page's stream, starting at the positions the page was rendered at. When it
  // reconnects, the browser sends the last id it saw (Last-Event-ID), which the server prefers to ?replay=.
  function openStream(url, replay, { onEvent, onState }) {
    const source = new EventSource(replay ? `${url}?replay=${encodeURIComponent(replay)}` : url,
      { withCredentials: true });
    source.addEventListener("open", () => onState("open"));
    source.addEventListener("error", (message) => {
      if (message.data) {  // the server's own error (a replay position past retention): stop here
        let error = {};
        try { error = JSON.parse(message.data); } catch (ignored) { /* not JSON */ }
        source.close();
        onState("error", error.message || message.data);
        return;
      }
      onState(source.readyState === EventSource.CLOSED ? "closed" : "reconnecting");
    });
    source.addEventListener("event", (message) => onEvent(JSON.parse(message.data)));
    return source;
  }

  function showState(state, detail) {
    const badge = $("live-state");
    if (!badge) return;
    badge.dataset.state = state;
    const labels = { open: "Live", reconnecting: "Reconnecting…", closed: "Disconnected", error: "Stopped" };
    badge.textContent = labels[state] || state;
    badge.className = "badge live-state " + ({ open: "ok", reconnecting: "warn" }[state] || "bad");
    badge.title = detail || "";
  }

  function flash(element) {
    element.classList.remove("updated");
    void element.offsetWidth;  // restart the animation
    element.classList.add("updated");
  }

  const text = (value) => (value === null || value === undefined ? "" : String(value));
  const money = (value) => (value === null || value === undefined || value === "" ? "" : Number(value).toFixed(2));
  const when = (value) => text(value).slice(0, 19).replace("T", " ");

  function note(list, empty, html) {
    if (empty) empty.remove();
    list.prepend(html);
    while (list.children.length > 50) list.lastElementChild.remove();
  }

  function activityItem(className, time, words) {
    const item = document.createElement("li");
    item.className = className;
    const stamp = document.createElement("span");
    stamp.className = "when";
    stamp.textContent = when(time).slice(11);
    item.append(stamp, document.createTextNode(words));
    return item;
  }

  // -- the case page ------------------------------------------------------------------------------------------

  function casePage() {
    const config = JSON.parse($("live-config").textContent);
    const form = $("case-form");
    const baseline = { ...config.values };  // what the server last said each editable field holds
    const activity = $("activity");

    const inputOf = (name) => form.querySelector(`[name="${name}"]`);
    const touched = (input) => text(input.value) !== text(baseline[input.name]);

    function refreshMark(input) {
      const label = input.closest("label");
      const changed = touched(input);
      label.classList.toggle("touched", changed);
      const hint = label.querySelector("[data-elsewhere]");
      if (!changed) hint.hidden = true;
    }

    function display(field, value) {
      for (const element of document.querySelectorAll(`[data-display="${field}"]`)) {
        const shown = element.dataset.format === "datetime" ? when(value) : text(value);
        if (element.textContent !== shown) {
          element.textContent = shown;
          flash(element);
        }
      }
    }

    function setPayment(status, amount) {
      const bar = $("payment");
      if (!bar) return;
      const badge = $("payment-status");
      const shown = status || "Unpaid";
      badge.textContent = shown;
      badge.className = "badge " + ({ Paid: "ok", Declined: "bad", Refunded: "warn" }[shown] || "");
      bar.className = `payment ${shown.toLowerCase()}`;
      if (amount !== undefined) $("payment-amount").textContent = money(amount);
      flash(bar);
    }

    // A value from elsewhere: displays follow it; an input follows it unless the user has changed that input and
    // not saved, in which case their text stays and a hint says what the field now holds elsewhere.
    function remote(field, value) {
      display(field, value);
      const input = inputOf(field);
      if (!input) return;
      if (touched(input)) {
        const hint = input.closest("label").querySelector("[data-elsewhere]");
        hint.textContent = `Changed elsewhere to “${text(value) || "(empty)"}”; your unsaved text is kept.`;
        hint.hidden = false;
      } else if (text(input.value) !== text(value)) {
        input.value = text(value);
        flash(input);
      }
      baseline[field] = value;
      refreshMark(input);
    }

    function onEvent(message) {
      const payload = message.payload || {};
      if (message.kind === "payment") {
        setPayment(payload.Status__c, payload.Amount__c);
        note(activity, $("activity-empty"), activityItem("payment-event", message.time,
          `Payment ${text(payload.Status__c) || "received"}: ${money(payload.Amount__c)} (event ${message.replayId})`));
        return;
      }
      const header = payload.ChangeEventHeader || {};
      if (header.changeType === "DELETE") {
        note(activity, $("activity-empty"), activityItem("change-event", message.time,
          `Deleted by ${text(message.by)}`));
        return;
      }
      const nulled = new Set(header.nulledFields || []);
      const fields = [...new Set([...(header.changedFields || []), ...nulled])];
      for (const field of fields) remote(field, nulled.has(field) ? null : payload[field]);
      if (fields.includes("LastModifiedDate")) display("LastModifiedBy.Name", message.by);
      if (fields.includes("Payment_Status__c") || fields.includes("Payment_Amount__c")) {
        const badge = $("payment-status");
        setPayment(payload.Payment_Status__c ?? (badge ? badge.textContent : null),
          fields.includes("Payment_Amount__c") ? payload.Payment_Amount__c : undefined);
      }
      const labels = config.labels || {};
      const shown = fields.filter((field) => !SYSTEM_FIELDS.has(field)).map((field) => labels[field] || field);
      note(activity, $("activity-empty"), activityItem("change-event", message.time,
        `${header.changeType === "CREATE" ? "Created" : "Changed"} by ${text(message.by)}` +
        (shown.length ? `: ${shown.join(", ")}` : "")));
    }

    form.addEventListener("input", (event) => { if (event.target.name) refreshMark(event.target); });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const values = {};
      for (const input of form.querySelectorAll("[name]")) if (touched(input)) values[input.name] = input.value;
      const result = $("save-result");
      result.className = "";
      if (!Object.keys(values).length) {
        result.textContent = "Nothing to save.";
        return;
      }
      result.textContent = "Saving…";
      try {
        const answer = await Console.fetchJSON(config.save, { method: "POST", body: { values } });
        for (const input of form.querySelectorAll("[name]")) {
          const value = answer.record[input.name];
          baseline[input.name] = value;
          input.value = text(value);
          refreshMark(input);
        }
        for (const [field, value] of Object.entries(answer.record)) {
          if (value === null || typeof value !== "object") display(field, value);
        }
        result.className = "ok";
        result.textContent = "Saved.";
      } catch (error) {
        result.className = "error";
        result.textContent = error.message;
      }
    });

    openStream(config.stream, config.replay, { onEvent, onState: showState });
  }

  // -- the manager's page -------------------------------------------------------------------------------------

  function managerPage() {
    const configElement = $("live-config");
    if (!configElement) return;
    const config = JSON.parse(configElement.textContent);
    const list = $("alerts");

    function onEvent(message) {
      const rep = (message.rep && message.rep.Name) || "A rep";
      const item = document.createElement("li");
      item.className = "alert";
      item.dataset.caseId = (message.case && message.case.Id) || "";
      item.dataset.owner = (message.rep && message.rep.Id) || "";
      const title = document.createElement("div");
      title.className = "title";
      const link = document.createElement("a");
      link.href = `/console/live/cases/${encodeURIComponent(item.dataset.caseId)}`;
      link.textContent = `case ${text(message.case && message.case.CaseNumber) || item.dataset.caseId}`;
      title.append(`${rep} closed `, link, ` as ${text(message.payload && message.payload.Resolution__c)}`);
      const subject = document.createElement("div");
      subject.textContent = text(message.case && message.case.Subject);
      const stamp = document.createElement("div");
      stamp.className = "when";
      stamp.textContent = `${when(message.time)} UTC · event ${message.replayId}`;
      item.append(title, subject, stamp);
      note(list, $("alerts-empty"), item);
      flash(item);
    }

    openStream(config.stream, config.replay, { onEvent, onState: showState });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const root = $("live-case");
    if (root) casePage();
    if ($("live-manager")) managerPage();
  });
})();
