// Event streams page: subscribe to a channel over Server-Sent Events, show events newest first (bounded), pause,
// and publish a test event to a platform event channel through the console's publish endpoint.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);

  function eventType(message) {
    const header = message.payload && message.payload.ChangeEventHeader;
    if (header) return `${header.changeType} ${header.entityName}`;
    return (message.topic || message.channel || "").replace(/^\/(event|data)\//, "");
  }

  const SYSTEM_FIELDS = new Set(["LastModifiedDate", "LastModifiedById", "SystemModstamp", "CreatedDate",
    "CreatedById", "IsDeleted"]);

  function eventDetail(message) {
    const header = message.payload && message.payload.ChangeEventHeader;
    if (!header) return message.eventUuid || "";
    const fields = [...(header.changedFields || []), ...(header.nulledFields || [])]
      .filter((field) => !SYSTEM_FIELDS.has(field));
    return (header.recordIds || []).join(", ") + (header.changeType === "UPDATE" && fields.length
      ? `\n${fields.join(", ")}` : "");
  }

  function cell(text, className) {
    const td = document.createElement("td");
    if (className) td.className = className;
    td.textContent = text;
    return td;
  }

  function row(message) {
    const tr = document.createElement("tr");
    tr.className = "event-row fresh";
    tr.dataset.replayId = String(message.replayId);
    tr.append(cell(String(message.replayId), "mono col-replay"));
    tr.append(cell((message.time || "").replace("T", " ").replace("Z", ""), "mono col-time"));
    const type = cell(eventType(message), "col-type");
    const detail = document.createElement("div");
    detail.className = "muted small mono";
    detail.textContent = eventDetail(message);
    type.append(detail);
    tr.append(type);
    const payload = document.createElement("td");
    const pre = document.createElement("pre");
    pre.className = "payload";
    pre.textContent = message.error ? `(cannot decode: ${message.error})` : JSON.stringify(message.payload, null, 2);
    payload.append(pre);
    tr.append(payload);
    setTimeout(() => tr.classList.remove("fresh"), 1500);
    return tr;
  }

  function inputFor(field) {
    let input;
    if (field.input === "textarea") {
      input = document.createElement("textarea");
      input.rows = 3;
    } else if (field.input === "select") {
      input = document.createElement("select");
      input.append(new Option("", ""));
      for (const value of field.options || []) input.append(new Option(value, value));
    } else {
      input = document.createElement("input");
      input.type = field.input;
      if (field.input === "number") input.step = field.scale ? String(10 ** -field.scale) : "1";
      if (field.length && field.input === "text") input.maxLength = field.length;
    }
    input.name = field.name;
    input.dataset.kind = field.input;
    if (field.required) input.required = true;
    return input;
  }

  function valueOf(input) {
    const kind = input.dataset.kind;
    if (kind === "checkbox") return input.checked;
    if (input.value === "") return null;
    if (kind === "number") return Number(input.value);
    if (kind === "datetime-local") return input.value.length === 16 ? `${input.value}:00.000Z` : `${input.value}Z`;
    return input.value;
  }

  document.addEventListener("DOMContentLoaded", () => {
    const config = JSON.parse($("events-config").textContent);
    const channels = new Map();
    for (const group of config.groups) for (const item of group.channels) channels.set(item.channel, item);
    const maxRows = config.maxRows || 200;
    const rows = $("event-rows");
    let source = null, paused = false, held = [], count = 0;

    function setState(state, text) {
      const badge = $("stream-state");
      badge.dataset.state = state;
      badge.textContent = text;
      badge.className = "badge " + ({open: "ok", reconnecting: "warn", closed: "bad", error: "bad"}[state] || "");
    }

    function show(message) {
      rows.prepend(row(message));
      while (rows.rows.length > maxRows) rows.deleteRow(rows.rows.length - 1);
      $("events-empty").hidden = true;
    }

    function arrived(message) {
      count += 1;
      $("stream-count").textContent = `${count} event${count === 1 ? "" : "s"}`;
      if (paused) {
        held.push(message);
        if (held.length > maxRows) held.shift();
        $("stream-held").hidden = false;
        $("stream-held").textContent = `Paused: ${held.length} new event${held.length === 1 ? "" : "s"} held`;
        return;
      }
      show(message);
    }

    function stop() {
      if (source) source.close();
      source = null;
      $("pause").disabled = true;
    }

    function subscribe() {
      stop();
      const channel = $("channel").value;
      $("stream-error").textContent = "";
      if (!channel) {
        $("stream-error").textContent = "Choose a channel first.";
        return;
      }
      let replay = $("replay-mode").value;
      if (replay === "CUSTOM") {
        replay = $("replay-id").value.trim();
        if (!/^\d+$/.test(replay)) {
          $("stream-error").textContent = "A replay id is a whole number (the Replay id column shows them).";
          return;
        }
      }
      rows.replaceChildren();
      held = [];
      count = 0;
      paused = false;
      $("pause").textContent = "Pause";
      $("stream-held").hidden = true;
      $("stream-count").textContent = "0 events";
      $("events-empty").hidden = false;
      $("stream-channel").textContent = `${channel} from ${replay}`;
      setState("connecting", "Connecting…");
      source = Console.stream(channel, {
        replay,
        onEvent: arrived,
        onState: (state) => {
          if (state === "open") setState("open", "Live");
          else if (state === "reconnecting") setState("reconnecting", "Reconnecting…");
          else {
            setState("closed", "Closed");
            if (!$("stream-error").textContent) {
              $("stream-error").textContent = "The server refused or ended the stream (logged out, or too many " +
                "open streams?). Subscribe again.";
            }
          }
        },
      });
      // The server's own error message (a replay id past retention): show it and stop reconnecting.
      source.addEventListener("error", (message) => {
        if (!message.data) return;
        let error = {};
        try { error = JSON.parse(message.data); } catch (ignored) { /* not JSON */ }
        $("stream-error").textContent = `${error.errorCode || "ERROR"}: ${error.message || message.data}`;
        stop();
        setState("error", "Stopped");
      });
      $("pause").disabled = false;
      history.replaceState(null, "", `?channel=${encodeURIComponent(channel)}&replay=${encodeURIComponent(replay)}`);
    }

    function choosePublish() {
      const item = channels.get($("channel").value);
      const form = $("publish");
      const fields = $("publish-fields");
      fields.replaceChildren();
      $("publish-result").textContent = "";
      if (!item || !item.publish) {
        form.hidden = true;
        $("publish-hint").hidden = false;
        return;
      }
      $("publish-hint").hidden = true;
      form.hidden = false;
      $("publish-target").textContent = `To ${item.channel} (${item.behavior})`;
      for (const field of item.fields || []) {
        const label = document.createElement("label");
        label.className = field.input === "checkbox" ? "check" : "";
        const name = document.createElement("span");
        name.textContent = `${field.label} `;
        const api = document.createElement("code");
        api.textContent = field.name;
        name.append(api);
        label.append(name, inputFor(field));
        fields.append(label);
      }
      if (!(item.fields || []).length) fields.textContent = "This event has no fields of its own.";
    }

    $("subscribe").addEventListener("submit", (event) => { event.preventDefault(); subscribe(); });
    $("channel").addEventListener("change", choosePublish);
    $("replay-mode").addEventListener("change", () => {
      $("replay-id-label").hidden = $("replay-mode").value !== "CUSTOM";
    });
    $("pause").addEventListener("click", () => {
      paused = !paused;
      $("pause").textContent = paused ? "Resume" : "Pause";
      if (!paused) {
        for (const message of held) show(message);
        held = [];
        $("stream-held").hidden = true;
      }
    });
    $("clear").addEventListener("click", () => {
      rows.replaceChildren();
      held = [];
      $("stream-held").hidden = true;
      $("events-empty").hidden = false;
    });
    $("publish").addEventListener("submit", async (event) => {
      event.preventDefault();
      const item = channels.get($("channel").value);
      if (!item) return;
      const values = {};
      for (const input of $("publish-fields").querySelectorAll("[name]")) {
        const value = valueOf(input);
        if (value !== null) values[input.name] = value;
      }
      const result = $("publish-result");
      result.className = "publish-result";
      result.textContent = "Publishing…";
      try {
        const outcome = await Console.fetchJSON("/console/api/events/publish", {
          method: "POST", body: { channel: item.channel, values },
        });
        result.classList.add("ok");
        result.textContent = outcome.replayId !== null && outcome.replayId !== undefined
          ? `Published: replay id ${outcome.replayId}` : `Published (event ${outcome.eventUuid})`;
        result.dataset.replayId = outcome.replayId === null ? "" : String(outcome.replayId);
      } catch (error) {
        result.classList.add("error");
        result.textContent = error.message;
      }
    });

    choosePublish();
    if (config.autostart) subscribe();
  });
})();
