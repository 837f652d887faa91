/* ClassPulse teacher dashboard: displayed expressions over lesson time.
 *
 * Plain JavaScript over the analytics API (no build step). The key comes from the
 * URL fragment (#key=…&lesson=…&bucket=…) or the form and is kept in sessionStorage
 * only; a keyed link pasted into an open tab loads without a reload (hashchange).
 * All times are shown in one time zone, the browser's, named on the page, and
 * formatted in the browser's locale. Colours come from the API's /palette.json,
 * the palette `classpulse analyze --report` draws with too.
 * State for tests and debugging is exposed as window.classpulse.
 */
"use strict";

(() => {
  const LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"];
  // Filled from /palette.json before the charts are made.
  const PALETTE = { expressions: {}, face_presence: "#4b5563", facing_screen: "#1f2933", uncertain: "#9ca3af" };
  const KEY_STORAGE = "classpulse.key";
  const BUCKET_STORAGE = "classpulse.bucket";
  const BUCKETS = ["10s", "30s", "1m", "5m"];
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
    palette: PALETTE,
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
    const bucket = [params.get("bucket"), localStorage.getItem(BUCKET_STORAGE)].find((b) => BUCKETS.includes(b));
    return { key: sessionStorage.getItem(KEY_STORAGE), lesson: params.get("lesson"), bucket: bucket || "1m" };
  }

  // An LMS launch (LTI) opens the dashboard with a single-use ticket in the fragment,
  // never a key: it is exchanged once for the launch's short-lived teacher session.
  async function redeemTicket() {
    const params = new URLSearchParams(location.hash.replace(/^#/, ""));
    const ticket = params.get("ticket");
    if (!ticket) return;
    params.delete("ticket");
    history.replaceState(null, "", location.pathname + location.search + (params.toString() ? "#" + params : ""));
    const response = await fetch("/v1/tickets/dashboard", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ ticket, lesson_id: params.get("lesson") }),
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error((body.error && body.error.message) || `HTTP ${response.status}`);
    sessionStorage.setItem(KEY_STORAGE, body.credential);
  }

  // The lesson and bucket stay in the address bar (a reload or a shared link keeps
  // them); the bucket is also the browser's default for the next lesson opened.
  function writeFragment() {
    const params = new URLSearchParams({ lesson: state.lesson.id, bucket: state.bucket });
    history.replaceState(null, "", `${location.pathname}${location.search}#${params}`);
    localStorage.setItem(BUCKET_STORAGE, state.bucket);
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

  // ---- time and number helpers ---------------------------------------------------
  // One time zone for every time on the page (the browser's, named in the page),
  // and the browser's locale for every format: no mix of zones or clock styles.
  const TIME_ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  const formats = {
    minute: new Intl.DateTimeFormat(undefined, { timeZone: TIME_ZONE, hour: "2-digit", minute: "2-digit" }),
    second: new Intl.DateTimeFormat(undefined, { timeZone: TIME_ZONE, hour: "2-digit", minute: "2-digit", second: "2-digit" }),
    date: new Intl.DateTimeFormat(undefined, { timeZone: TIME_ZONE, dateStyle: "medium" }),
  };
  const lessonStart = () => (state.lesson ? new Date(state.lesson.starts_at).getTime() : 0);
  const minutesOf = (iso) => (new Date(iso).getTime() - lessonStart()) / 60000;
  const bucketMinutes = () => ({ "10s": 1 / 6, "30s": 0.5, "1m": 1, "5m": 5 })[state.bucket];
  // Seconds are shown where minutes alone would repeat: short spans, sub-minute buckets.
  const clock = (minutes, seconds = false) => {
    if (!state.lesson) return "";
    return (seconds ? formats.second : formats.minute).format(new Date(lessonStart() + minutes * 60000));
  };
  const dateAndTime = (iso) => `${formats.date.format(new Date(iso))} ${formats.minute.format(new Date(iso))}`;
  const pct = (share) => (share === null || share === undefined ? "–" : `${Math.round(share * 100)}%`);
  const numbers = new Intl.NumberFormat();
  // "1 student", "2 students": English nouns whose plural adds an s.
  const count = (n, noun) => `${numbers.format(n)} ${noun}${n === 1 ? "" : "s"}`;

  // Both charts span the whole lesson window (and anything shown beyond it), so a
  // listed marker is always on their axis and the one-student chart reaches the end.
  function lessonSpan() {
    if (!state.lesson) return [0, 1];
    let [min, max] = [0, minutesOf(state.lesson.ends_at)];
    const markers = state.summary ? state.summary.markers.map((m) => minutesOf(m.at)) : [];
    const buckets = state.buckets.map((b) => minutesOf(b.start));
    [...markers, ...buckets].forEach((x) => { min = Math.min(min, x); max = Math.max(max, x); });
    return [min, max];
  }

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
    const colour = (label) => PALETTE.expressions[label];
    const datasets = LABELS.map((label) => ({
      label, data: [], borderColor: colour(label), backgroundColor: colour(label),
      borderWidth: 2, pointRadius: 2, spanGaps: false, cubicInterpolationMode: "monotone", yAxisID: "y",
    }));
    if (withPresence) {
      datasets.push({
        label: "face presence", data: [], borderColor: PALETTE.face_presence, backgroundColor: `${PALETTE.face_presence}14`,
        fill: "origin", borderDash: [6, 4], borderWidth: 1.5, pointRadius: 0, spanGaps: false, yAxisID: "y2",
      });
      // Where heads point (from the face detector's keypoints), beside presence.
      datasets.push({
        label: "facing the screen", data: [], borderColor: PALETTE.facing_screen, backgroundColor: PALETTE.facing_screen,
        borderDash: [2, 3], borderWidth: 2, pointRadius: 0, spanGaps: false, yAxisID: "y2",
      });
      // Faces the model was too unsure of to label: left out of the expression shares.
      datasets.push({
        label: "expression uncertain", data: [], borderColor: PALETTE.uncertain, backgroundColor: PALETTE.uncertain,
        borderDash: [1, 3], borderWidth: 2, pointRadius: 0, spanGaps: false, yAxisID: "y2",
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
          x: { type: "linear", title: { display: true, text: `lesson time (${TIME_ZONE})` }, ticks: { callback(v) { return clock(v, this.max - this.min < 10); } } },
          y: { min: 0, max: 1, title: { display: true, text: "share of displayed expression" }, ticks: { callback: (v) => pct(v) } },
          ...(withPresence ? { y2: { min: 0, max: 1, position: "right", grid: { drawOnChartArea: false }, title: { display: true, text: "presence, facing, uncertain" }, ticks: { callback: (v) => pct(v) } } } : {}),
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

  // Every series of a chart from its buckets: the expressions, then (right axis) face
  // presence, facing the screen and the uncertain share, in makeChart's order.
  function drawBuckets(chart, buckets) {
    LABELS.forEach((label, i) => { chart.data.datasets[i].data = seriesFor(buckets, label); });
    ["face_share", "facing_share", "uncertain_share"].forEach((field, i) => {
      chart.data.datasets[LABELS.length + i].data = buckets.map((b) => ({ x: minutesOf(b.start), y: b[field] }));
    });
  }

  function renderClassChart() {
    const chart = window.classpulse.chart;
    const buckets = state.buckets;
    drawBuckets(chart, buckets);
    const markers = state.summary ? state.summary.markers : [];
    chart.options.plugins.lessonMarkers.markers = markers.map((m) => ({ x: minutesOf(m.at), label: m.label }));
    chart.options.plugins.lessonMarkers.highlight = state.highlight;
    chart.update();
    // The API sends a suppressed bucket (fewer than k students seen, empty ones too)
    // with no figures at all, and withholds the shares of one with too few labelled.
    const hidden = buckets.filter((b) => b.suppressed || (!b.expressions && b.faces_labelled > 0)).length;
    const k = state.summary ? state.summary.min_group_size : 5;
    $("suppressed-note").hidden = hidden === 0;
    $("suppressed-note").textContent = `${count(hidden, "time bucket")} ${hidden === 1 ? "is shown as a gap" : "are shown as gaps"}: class figures need at least ${count(k, "student")} (seen, and with a labelled face for expression shares), so smaller groups are hidden.`;
    const canvas = $("class-chart");
    canvas.dataset.points = String(buckets.length);
    canvas.dataset.lastUpdate = state.lastUpdate || "";
  }

  function showWholeLesson(chart) {
    [chart.options.scales.x.min, chart.options.scales.x.max] = lessonSpan();
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
    showWholeLesson(chart);
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

  // "facing the screen" of a group, when the API gives it (null without head poses or
  // with too few students who had one).
  function facing(group, separator = " ·") {
    return group.facing_share === null || group.facing_share === undefined ? "" : `${separator} facing the screen ${pct(group.facing_share)}`;
  }

  // The share of classified faces left unlabelled as too uncertain, when there were any.
  function uncertain(group) {
    return group.uncertain_share ? ` · expression uncertain for ${pct(group.uncertain_share)} of faces` : "";
  }

  function renderSummary() {
    const s = state.summary;
    const totals = s.totals;
    $("totals").textContent = totals.suppressed
      ? `Fewer than ${count(s.min_group_size, "student")} seen so far: no class figures yet.`
      : `${count(totals.students_seen, "student")} seen · ${count(totals.frames, "frame")} · face presence ${pct(totals.face_share)}` +
        facing(totals) +
        uncertain(totals) +
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
      const mix = seg.expressions ? `${seg.dominant}, face presence ${pct(seg.face_share)}${facing(seg, ",")}` : "too few students to show";
      segments.appendChild(spanButton(`${seg.marker || "Before the first marker"} (${clock(minutesOf(seg.start))}): ${mix}`, [minutesOf(seg.start), minutesOf(seg.end)]));
    });
    const select = $("student-select");
    const chosen = select.value; // a live refresh keeps the teacher's drill-down
    select.replaceChildren(new Option("Choose a student…", ""));
    s.students.forEach((st) => select.appendChild(new Option(`${st.external_id} · ${count(st.frames, "frame")}`, st.student_id)));
    select.value = chosen;
    // Per-student data needs the key's per-student permission: say so instead of failing.
    select.disabled = !s.per_student;
    $("student-panel").dataset.perStudent = s.per_student ? "allowed" : "refused";
    $("export-events").hidden = !s.per_student;
  }

  const PER_STUDENT_REFUSED = "This key shows class figures only: one student's data needs a key with the per-student permission, which the school's LMS grants.";

  // ---- per-student drill-down ----------------------------------------------------
  async function loadStudent(studentId) {
    const chart = window.classpulse.studentChart;
    showWholeLesson(chart);
    if (!studentId) {
      state.student = null;
      chart.data.datasets.forEach((d) => { d.data = []; });
      chart.update();
      $("student-note").textContent = state.summary && !state.summary.per_student ? PER_STUDENT_REFUSED : "";
      return;
    }
    let body;
    try {
      body = await api(`/v1/lessons/${state.lesson.id}/students/${studentId}/timeline`, { bucket: state.bucket });
    } catch (error) {
      if (error.status !== 403) throw error;
      $("student-note").textContent = `${PER_STUDENT_REFUSED} (${error.message})`;
      return;
    }
    state.student = body;
    const seen = body.buckets.filter((b) => b.frames > 0);
    // The student's series, as the class chart draws the class's.
    drawBuckets(chart, seen);
    chart.options.plugins.lessonMarkers.markers = window.classpulse.chart.options.plugins.lessonMarkers.markers;
    chart.update();
    $("student-chart").dataset.student = body.external_id;
    const row = state.summary ? state.summary.students.find((st) => st.student_id === studentId) : null;
    $("student-note").textContent = `${body.external_id}: ${count(body.points.length, "labelled frame")}${row ? facing(row, ",") : ""}.`;
  }

  // ---- live mode -----------------------------------------------------------------
  function stopLive() {
    if (state.source) state.source.close();
    state.source = null;
    $("live-badge").hidden = true;
  }

  // EventSource and download links cannot send the key as a header, and a key in a
  // URL ends up in history and proxy logs: they carry a single-use ticket instead.
  async function ticket(purpose) {
    const response = await fetch("/v1/tickets", {
      method: "POST",
      headers: { Authorization: `Bearer ${state.key}`, "Content-Type": "application/json" },
      body: JSON.stringify({ purpose, lesson_id: state.lesson.id }),
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.error ? body.error.message : response.statusText);
    return body.ticket;
  }

  async function startLive() {
    stopLive();
    const url = new URL(`/v1/lessons/${state.lesson.id}/live`, location.origin);
    url.searchParams.set("bucket", state.bucket);
    url.searchParams.set("ticket", await ticket("live"));
    const source = new EventSource(url);
    state.source = source;
    source.addEventListener("ready", () => {
      $("live-badge").hidden = false;
      document.body.dataset.live = "ready";
    });
    // The server ends a stream after its maximum lifetime (a new ticket, a new
    // stream: the used one cannot reconnect) or when the key no longer gives access (stop).
    source.addEventListener("closed", (event) => {
      const { reason, detail } = JSON.parse(event.data);
      if (reason === "max_duration") {
        if (state.source === source) guard(startLive)();
        return;
      }
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
    Object.entries({ ...params, bucket: state.bucket }).forEach(([k, v]) => url.searchParams.set(k, v));
    $(id).href = url.toString();
    $(id).onclick = guard(async (event) => {
      event.preventDefault();
      url.searchParams.set("ticket", await ticket("export"));
      location.assign(url.toString());
    });
  }

  async function loadLesson(lessonId) {
    showError("");
    state.lesson = state.lessons.find((l) => l.id === lessonId);
    if (!state.lesson) return;
    writeFragment();
    $("demo-badge").hidden = !state.lesson.is_demo;
    $("lesson-title").textContent = state.lesson.title;
    $("class-title").textContent = `${state.lesson.class_title} · ${dateAndTime(state.lesson.starts_at)}–${clock(minutesOf(state.lesson.ends_at))}`;
    $("time-zone").textContent = `times in ${TIME_ZONE}`;
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
    if (state.lesson.is_live) await startLive(); else stopLive();
    document.body.dataset.loaded = lessonId;
  }

  async function start() {
    await redeemTicket();
    const fromUrl = readFragment();
    state.key = fromUrl.key;
    state.bucket = fromUrl.bucket;
    $("bucket-select").value = state.bucket;
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
    select.replaceChildren(...state.lessons.map((l) => new Option(`${l.is_demo ? "[DEMO] " : ""}${l.title} · ${l.class_title} · ${dateAndTime(l.starts_at)}`, l.id)));
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

  // A link pasted into an open tab changes only the fragment: no reload follows.
  // A new key starts over; a lesson or bucket of the same key loads in place.
  function followFragment() {
    const params = new URLSearchParams(location.hash.replace(/^#/, ""));
    if (params.get("key") || params.get("ticket")) return start();
    const lesson = params.get("lesson");
    const bucket = params.get("bucket");
    if (!state.lesson || !lesson || !state.lessons.some((l) => l.id === lesson)) return Promise.resolve();
    if (lesson === state.lesson.id && (!BUCKETS.includes(bucket) || bucket === state.bucket)) return Promise.resolve();
    if (BUCKETS.includes(bucket)) {
      state.bucket = bucket;
      $("bucket-select").value = bucket;
    }
    $("lesson-select").value = lesson;
    return loadLesson(lesson);
  }

  async function loadPalette() {
    const response = await fetch("/palette.json");
    if (response.ok) Object.assign(PALETTE, await response.json());
  }

  document.addEventListener("DOMContentLoaded", guard(async () => {
    await loadPalette();
    window.classpulse.chart = makeChart($("class-chart"), true);
    window.classpulse.studentChart = makeChart($("student-chart"), true);
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
    window.addEventListener("hashchange", guard(followFragment));
    await start();
  }));
})();
