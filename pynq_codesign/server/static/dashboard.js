/* The board dashboard: board facts, then the QoS stream (Server-Sent Events) drawn live. */
(function () {
  "use strict";
  const C = window.minichart;
  const charts = {
    latency: new C.LineChart(document.getElementById("chart-latency"), { unit: "ms" }),
    fps: new C.LineChart(document.getElementById("chart-fps"), { unit: "FPS", color: "#2b9a4a" }),
    power: new C.LineChart(document.getElementById("chart-power"), { unit: "W", color: "#c0392b" }),
    bundles: new C.BarChart(document.getElementById("chart-bundles"), { unit: "ms" }),
  };
  const state = { samples: 0, frames: 0, power: 0, charts: charts };
  window.dashboard = state;
  const $ = (id) => document.getElementById(id);
  let n = 0;

  function text(el, s) { el.textContent = s; }

  function refreshFacts() {
  fetch("api/v1/board").then((r) => r.json()).then((b) => {
    text($("source"), b.source);
    const facts = $("facts");
    facts.textContent = "";
    const items = [["board", b.board], ["part", b.part], ["clock", b.clock_mhz + " MHz"],
                   ["pynq", b.pynq_version || "n/a"], ["power", b.power],
                   ["service", b.service_version],
                   ["loaded", b.loaded ? b.loaded.name + " (" + b.loaded.hardware_id + ")" : "none"]];
    for (const [k, v] of items) {
      const s = document.createElement("span");
      s.textContent = k + ": " + v;
      facts.appendChild(s);
    }
  }).catch(() => text($("facts"), "board facts unavailable"));
  }
  refreshFacts();

  function jobRow(d, result) {
    let row = document.getElementById("job-" + d.job);
    if (!row) {
      row = document.createElement("tr"); row.id = "job-" + d.job;
      for (let i = 0; i < 4; i++) { row.appendChild(document.createElement("td")); }
      $("jobs").appendChild(row);
    }
    const td = row.children;
    text(td[0], d.job); text(td[1], d.design_id || "");
    if (d.state) { text(td[2], d.state + (d.error ? ": " + d.error : "")); }
    if (result) {
      const r = result;
      text(td[3], (r.fps ? r.fps.toFixed(2) + " FPS" : "") +
           (r.power_w ? ", " + r.power_w.toFixed(2) + " W (" + r.power_source + ")" : "") +
           " [" + r.source + "]");
    }
  }

  const es = new EventSource("api/v1/qos/stream");
  es.onopen = () => text($("stream-state"), "live");
  es.onerror = () => text($("stream-state"), "reconnecting");
  es.addEventListener("frame", (ev) => {
    const d = JSON.parse(ev.data);
    n += 1; state.samples += 1; state.frames += 1;
    charts.latency.push(n, d.latency_ms);
    charts.fps.push(n, d.fps);
    charts.bundles.set(d.bundles_ms, d.bundles_ms.map((_, i) => "b" + i));
    text($("source"), d.source);
    text($("sample-count"), String(state.samples));
  });
  es.addEventListener("power", (ev) => {
    const d = JSON.parse(ev.data);
    state.samples += 1; state.power += 1;
    charts.power.push(d.t, d.power_w);
    text($("sample-count"), String(state.samples));
  });
  es.addEventListener("job", (ev) => {
    const d = JSON.parse(ev.data);
    text($("job-state"), d.job + " " + d.state);
    jobRow(d, null);
    if (d.state === "done") { refreshFacts(); }      // the loaded design changed
  });
  es.addEventListener("result", (ev) => {
    const d = JSON.parse(ev.data);
    jobRow({ job: d.job, design_id: d.design_id, state: "done" }, d.record);
  });
})();
