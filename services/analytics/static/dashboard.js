/* ClassPulse teacher dashboard: displayed expressions over lesson time.
 *
 * Plain JavaScript over the analytics API (no build step). The key comes from the
 * URL fragment (#key=…&lesson=…) or the form and is kept in sessionStorage only.
 * State for tests and debugging is exposed as window.classpulse.
 */
"use strict";

(() => {
  const LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"];
  const COLORS = {
    angry: "#d1495b", disgust: "#7b8d3a", fear: "#8e5ea2", happy: "#edae49",
    sad: "#3d6fb6", surprise: "#00a6a6", neutral: "#8a8f98",
  };
  const KEY_STORAGE = "classpulse.key";
  const $ = (id) => document.getElementById(id);

  const state = {
    key: null, lessons: [], lesson: null, bucket: "1m", buckets: [], summary: null,
    source: null, lastUpdate: null, liveEvents: 0, highlight: null, student: null,
  };
  window.classpulse = {
    state,
    chart: null,
    studentChart: null,
    points: () => (window.classpulse.chart ? window.classpulse.chart.data.datasets[0].data.length : 0),
    studentPoints: () => (state.student ? state.student.points.length : 0),
  };

  // ---- credentials ---------------------------------------------------------------
  function readFragment() {
    const params = new URLSearchParams(location.hash.replace(/^#/, ""));
    const key = params.get("key");
    if (key) {
      sessionStorage.setItem(KEY_STORAGE, key);
      params.delete("key");
      // Drop the key from the address bar so it is not shared by copying the URL.
      history.replaceState(null, "", location.pathname + location.search + (params.toString() ? "#" + params : ""));
    }
    return { key: sessionStorage.getItem(KEY_STORAGE), lesson: params.get("lesson") };
  }

  async function api(path, params = {}) {
    const url = new URL(path, location.origin);
    Object.entries(params).forEach(([k, v]) => v !== undefined && v !== null && url.searchParams.set(k, v));
    const response = await fetch(url, { headers: { Authorization: `Bearer ${state.key}` } });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const message = body.error ? body.error.message : response.statusText;
      const error = new Error(message);
      error.status = response.status;
      throw error;
    }
    return body;
  }

  function showError(message) {
    $("error").textContent = message;
    $("error").hidden = !message;
  }

  // ---- time helpers --------------------------------------------------------------
  const lessonStart = () => (state.lesson ? new Date(state.lesson.starts_at).getTime() : 0);
  const minutesOf = (iso) => (new Date(iso).getTime() - lessonStart()) / 60000;
  const bucketMinutes = () => ({ "10s": 1 / 6, "30s": 0.5, "1m": 1, "5m": 5 })[state.bucket];
  // Seconds are shown where minutes alone would repeat: short spans, sub-minute buckets.
  const clock = (minutes, seconds = false) => {
    if (!state.lesson) return "";
    const at = new Date(lessonStart() + minutes * 60000);
    return at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", ...(seconds ? { second: "2-digit" } : {}) });
  };
  const pct = (share) => (share === null || share === undefined ? "–" : `${Math.round(share * 100)}%`);

  // ---- chart plugins: markers and the highlighted span --------------------------
  const markerPlugin = {
    id: "lessonMarkers",
    afterDatasetsDraw(chart, _args, options) {
      const { ctx, chartArea, scales } = chart;
      const x = scales.x;
      if (options.highlight) {
        const left = Math.max(x.getPixelForValue(options.highlight[0]), chartArea.left);
        const right = Math.min(x.getPixelForValue(options.highlight[1]), chartArea.right);
        if (right > left) {
          ctx.save();
          ctx.fillStyle = "rgba(47, 111, 222, 0.12)";
          ctx.fillRect(left, chartArea.top, right - left, chartArea.bottom - chartArea.top);
          ctx.restore();
        }
      }
      (options.markers || []).forEach((marker) => {
        const px = x.getPixelForValue(marker.x);
        if (px < chartArea.left || px > chartArea.right) return;
        ctx.save();
        ctx.strokeStyle = "#444";
        ctx.setLineDash([4, 4]);
        ctx.beginPath();
        ctx.moveTo(px, chartArea.top);
        ctx.lineTo(px, chartArea.bottom);
        ctx.stroke();
        ctx.setLineDash([]);
        ctx.fillStyle = "#222";
        ctx.font = "12px system-ui, sans-serif";
        ctx.fillText(marker.label, px + 4, chartArea.top + 12);
        ctx.restore();
      });
    },
  };

  function makeChart(canvas, withPresence) {
    const datasets = LABELS.map((label) => ({
      label, data: [], borderColor: COLORS[label], backgroundColor: COLORS[label],
      borderWidth: 2, pointRadius: 2, spanGaps: false, cubicInterpolationMode: "monotone", yAxisID: "y",
    }));
    if (withPresence) {
      datasets.push({
        label: "face presence", data: [], borderColor: "#4b5563", backgroundColor: "rgba(75, 85, 99, 0.08)",
        fill: "origin", borderDash: [6, 4], borderWidth: 1.5, pointRadius: 0, spanGaps: false, yAxisID: "y2",
      });
    }
    return new Chart(canvas, {
      type: "line",
      data: { datasets },
      plugins: [markerPlugin],
      options: {
        animation: false, responsive: true, maintainAspectRatio: false, parsing: false,
        interaction: { mode: "nearest", axis: "x", intersect: false },
        scales: {
          x: { type: "linear", title: { display: true, text: "lesson time" }, ticks: { callback(v) { return clock(v, this.max - this.min < 10); } } },
          y: { min: 0, max: 1, title: { display: true, text: "share of displayed expression" }, ticks: { callback: (v) => pct(v) } },
          ...(withPresence ? { y2: { min: 0, max: 1, position: "right", grid: { drawOnChartArea: false }, title: { display: true, text: "face presence" }, ticks: { callback: (v) => pct(v) } } } : {}),
        },
        plugins: {
          legend: { position: "bottom" },
          tooltip: { callbacks: { title: (items) => clock(items[0].parsed.x, bucketMinutes() < 1), label: (item) => `${item.dataset.label}: ${pct(item.parsed.y)}` } },
          lessonMarkers: { markers: [], highlight: null },
        },
      },
    });
  }

  function seriesFor(buckets, label) {
    return buckets.map((b) => ({ x: minutesOf(b.start), y: b.expressions ? b.expressions[label] : null }));
  }

  function renderClassChart() {
    const chart = window.classpulse.chart;
    const buckets = state.buckets;
    LABELS.forEach((label, i) => { chart.data.datasets[i].data = seriesFor(buckets, label); });
    chart.data.datasets[LABELS.length].data = buckets.map((b) => ({ x: minutesOf(b.start), y: b.face_share }));
    const markers = state.summary ? state.summary.markers : [];
    chart.options.plugins.lessonMarkers.markers = markers.map((m) => ({ x: minutesOf(m.at), label: m.label }));
    chart.options.plugins.lessonMarkers.highlight = state.highlight;
    chart.update();
    const hidden = buckets.filter((b) => b.suppressed && b.frames > 0).length;
    const k = state.summary ? state.summary.min_group_size : 5;
    $("suppressed-note").hidden = hidden === 0;
    $("suppressed-note").textContent = `${hidden} time bucket(s) are shown as gaps: fewer than ${k} students had a labelled face, so their expression shares are hidden.`;
    const canvas = $("class-chart");
    canvas.dataset.points = String(buckets.length);
    canvas.dataset.lastUpdate = state.lastUpdate || "";
  }

  function zoomTo(span) {
    const chart = window.classpulse.chart;
    state.highlight = span;
    const pad = Math.max(bucketMinutes() * 2, (span[1] - span[0]) * 0.5);
    chart.options.scales.x.min = span[0] - pad;
    chart.options.scales.x.max = span[1] + pad;
    $("reset-zoom").hidden = false;
    $("class-chart").dataset.zoom = `${span[0]}-${span[1]}`;
    renderClassChart();
  }

  function resetZoom() {
    const chart = window.classpulse.chart;
    delete chart.options.scales.x.min;
    delete chart.options.scales.x.max;
    state.highlight = null;
    $("reset-zoom").hidden = true;
    delete $("class-chart").dataset.zoom;
    document.querySelectorAll(".clickable button.selected").forEach((b) => b.classList.remove("selected"));
    renderClassChart();
  }

  function spanButton(text, span) {
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = text;
    button.addEventListener("click", () => {
      document.querySelectorAll(".clickable button.selected").forEach((b) => b.classList.remove("selected"));
      button.classList.add("selected");
      zoomTo(span);
    });
    li.appendChild(button);
    return li;
  }

  function renderSummary() {
    const s = state.summary;
    const totals = s.totals;
    $("totals").textContent = `${totals.students_seen} students seen · ${totals.frames} frames · face presence ${pct(totals.face_share)}` +
      (totals.dominant ? ` · most displayed expression: ${totals.dominant}` : "");
    const moments = $("moments");
    moments.replaceChildren();
    if (s.moments.length === 0) {
      const li = document.createElement("li");
      li.textContent = "No marked shift so far.";
      li.className = "muted";
      moments.appendChild(li);
    }
    s.moments.forEach((m) => {
      moments.appendChild(spanButton(`${clock(minutesOf(m.start))}–${clock(minutesOf(m.end))}: ${m.description}`, [minutesOf(m.start), minutesOf(m.end)]));
    });
    const segments = $("segments");
    segments.replaceChildren();
    s.segments.forEach((seg) => {
      const mix = seg.expressions ? `${seg.dominant}, face presence ${pct(seg.face_share)}` : "too few students to show";
      segments.appendChild(spanButton(`${seg.marker || "Before the first marker"} (${clock(minutesOf(seg.start))}): ${mix}`, [minutesOf(seg.start), minutesOf(seg.end)]));
    });
    const select = $("student-select");
    const chosen = select.value; // a live refresh keeps the teacher's drill-down
    select.replaceChildren(new Option("Choose a student…", ""));
    s.students.forEach((st) => select.appendChild(new Option(`${st.external_id} · ${st.frames} frames`, st.student_id)));
    select.value = chosen;
  }

  // ---- per-student drill-down ----------------------------------------------------
  async function loadStudent(studentId) {
    const chart = window.classpulse.studentChart;
    if (!studentId) {
      state.student = null;
      chart.data.datasets.forEach((d) => { d.data = []; });
      chart.update();
      $("student-note").textContent = "";
      return;
    }
    const body = await api(`/v1/lessons/${state.lesson.id}/students/${studentId}/timeline`, { bucket: state.bucket });
    state.student = body;
    LABELS.forEach((label, i) => { chart.data.datasets[i].data = seriesFor(body.buckets.filter((b) => b.frames > 0), label); });
    chart.options.plugins.lessonMarkers.markers = window.classpulse.chart.options.plugins.lessonMarkers.markers;
    chart.update();
    $("student-chart").dataset.student = body.external_id;
    $("student-note").textContent = `${body.external_id}: ${body.points.length} labelled frames.`;
  }

  // ---- live mode -----------------------------------------------------------------
  function stopLive() {
    if (state.source) state.source.close();
    state.source = null;
    $("live-badge").hidden = true;
  }

  function startLive() {
    stopLive();
    const url = new URL(`/v1/lessons/${state.lesson.id}/live`, location.origin);
    url.searchParams.set("bucket", state.bucket);
    url.searchParams.set("access_token", state.key);
    const source = new EventSource(url);
    state.source = source;
    source.addEventListener("ready", () => {
      $("live-badge").hidden = false;
      document.body.dataset.live = "ready";
    });
    // The server ends a stream after its maximum lifetime (EventSource then
    // reconnects by itself) or when the key no longer gives access (stop).
    source.addEventListener("closed", (event) => {
      const { reason, detail } = JSON.parse(event.data);
      if (reason === "max_duration") return;
      stopLive();
      document.body.dataset.live = "closed";
      showError(`Live updates stopped: ${detail || reason}.`);
    });
    source.addEventListener("buckets", (event) => {
      const changed = JSON.parse(event.data);
      const byStart = new Map(state.buckets.map((b) => [new Date(b.start).getTime(), b]));
      changed.forEach((b) => byStart.set(new Date(b.start).getTime(), b));
      state.buckets = [...byStart.entries()].sort((a, b) => a[0] - b[0]).map((e) => e[1]);
      state.liveEvents += 1;
      state.lastUpdate = new Date().toISOString();
      document.body.dataset.liveEvents = String(state.liveEvents);
      const badge = $("live-badge");
      badge.classList.remove("pulse");
      void badge.offsetWidth; // restart the animation
      badge.classList.add("pulse");
      renderClassChart();
      refreshSummarySoon();
    });
  }

  // The summary (totals, moments, students) is heavier than a bucket: during a
  // live lesson it is reloaded at most every SUMMARY_REFRESH_MS.
  const SUMMARY_REFRESH_MS = 10000;
  function refreshSummarySoon() {
    if (state.summaryTimer) return;
    const wait = Math.max(0, SUMMARY_REFRESH_MS - (Date.now() - (state.summaryAt || 0)));
    state.summaryTimer = setTimeout(guard(async () => {
      state.summaryTimer = null;
      if (!state.lesson) return;
      state.summary = await api(`/v1/lessons/${state.lesson.id}/summary`, { bucket: state.bucket });
      state.summaryAt = Date.now();
      renderSummary();
      renderClassChart();
    }), wait);
  }

  // ---- loading -------------------------------------------------------------------
  function exportLink(id, params) {
    const url = new URL(`/v1/lessons/${state.lesson.id}/export`, location.origin);
    Object.entries({ ...params, bucket: state.bucket, access_token: state.key }).forEach(([k, v]) => url.searchParams.set(k, v));
    $(id).href = url.toString();
  }

  async function loadLesson(lessonId) {
    showError("");
    state.lesson = state.lessons.find((l) => l.id === lessonId);
    if (!state.lesson) return;
    history.replaceState(null, "", `${location.pathname}#lesson=${lessonId}`);
    $("demo-badge").hidden = !state.lesson.is_demo;
    $("lesson-title").textContent = state.lesson.title;
    $("class-title").textContent = `${state.lesson.class_title} · ${new Date(state.lesson.starts_at).toLocaleString()}`;
    const [timeline, summary] = await Promise.all([
      api(`/v1/lessons/${lessonId}/timeline`, { bucket: state.bucket }),
      api(`/v1/lessons/${lessonId}/summary`, { bucket: state.bucket }),
    ]);
    state.buckets = timeline.buckets;
    state.summary = summary;
    state.summaryAt = Date.now();
    state.lastUpdate = new Date().toISOString();
    ["overview", "moments-panel", "student-panel"].forEach((id) => { $(id).hidden = false; });
    resetZoom();
    renderSummary();
    await loadStudent("");
    exportLink("export-csv", { format: "csv", what: "timeline" });
    exportLink("export-json", { format: "json", what: "timeline" });
    exportLink("export-events", { format: "csv", what: "events" });
    if (state.lesson.is_live) startLive(); else stopLive();
    document.body.dataset.loaded = lessonId;
  }

  async function start() {
    const fromUrl = readFragment();
    state.key = fromUrl.key;
    if (!state.key) {
      $("key-panel").hidden = false;
      return;
    }
    try {
      state.lessons = (await api("/v1/lessons")).lessons;
    } catch (error) {
      if (error.status === 401 || error.status === 403) {
        sessionStorage.removeItem(KEY_STORAGE);
        $("key-panel").hidden = false;
      }
      showError(error.message);
      return;
    }
    $("key-panel").hidden = true;
    $("controls").hidden = false;
    const select = $("lesson-select");
    select.replaceChildren(...state.lessons.map((l) => new Option(`${l.is_demo ? "[DEMO] " : ""}${l.title} · ${l.class_title} · ${new Date(l.starts_at).toLocaleDateString()}`, l.id)));
    if (state.lessons.length === 0) {
      showError("No lessons yet for this key.");
      return;
    }
    const chosen = state.lessons.some((l) => l.id === fromUrl.lesson) ? fromUrl.lesson : state.lessons[0].id;
    select.value = chosen;
    await loadLesson(chosen);
  }

  function guard(fn) {
    return (...args) => fn(...args).catch((error) => showError(error.message));
  }

  document.addEventListener("DOMContentLoaded", () => {
    window.classpulse.chart = makeChart($("class-chart"), true);
    window.classpulse.studentChart = makeChart($("student-chart"), false);
    $("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      sessionStorage.setItem(KEY_STORAGE, $("key-input").value.trim());
      guard(start)();
    });
    $("lesson-select").addEventListener("change", (e) => guard(loadLesson)(e.target.value));
    $("bucket-select").addEventListener("change", (e) => {
      state.bucket = e.target.value;
      guard(loadLesson)(state.lesson.id);
    });
    $("student-select").addEventListener("change", (e) => guard(loadStudent)(e.target.value));
    $("reset-zoom").addEventListener("click", resetZoom);
    guard(start)();
  });
})();
