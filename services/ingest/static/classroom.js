// ClassPulse classroom page: consent first, then one still frame every N seconds.
//
// Where the server asks for it (/me's client_detection) and the browser can,
// the page finds the faces itself (face_detect.js, face_align.js) and sends
// only each face's aligned crop (face_crops.js), or a tiny "no face" body:
// the room and anyone else in view never leave the device. If the detector
// cannot be loaded, the page says so and sends whole frames.
//
// The link carries the student token in its fragment (#token=…&interval=5), so
// it never reaches server logs or the Referer header. Nothing is captured or
// sent before the student agrees, and nothing after Stop: every send checks
// the state first, and Stop closes the socket and the camera.
"use strict";

(() => {
  const DEFAULT_INTERVAL_S = 5; // as in the thesis's client
  const MIN_INTERVAL_S = 1;
  const MAX_INTERVAL_S = 60;
  const FRAME_WIDTH = 640;
  const FRAME_HEIGHT = 480;
  const JPEG_QUALITY = 0.8;
  const BACKOFF_BASE_MS = 1000;
  const BACKOFF_MAX_MS = 30000;
  // A frame still refused after this many attempts is given up (counted in errors).
  const MAX_ATTEMPTS = 8;
  // An unanswered socket send means a broken connection: resend the same seq over HTTP.
  const ACK_TIMEOUT_MS = 10000;
  const SOCKET_OPEN_TIMEOUT_MS = 5000;
  // After the socket fails, frames go over HTTP and the socket is tried again this much later.
  const SOCKET_RETRY_MS = 30000;
  const RETRYABLE_STATUS = new Set([429, 502, 503, 504]);
  // Errors after which sending again cannot succeed: stop and say why.
  const FATAL_CODES = {
    unauthorized: "This link has expired or is not valid. Ask your teacher for a new one.",
    forbidden: "This link is for another lesson.",
    consent_required:
      "Sharing needs both your consent and your school's for this lesson, so nothing is sent.",
    conflict: "The lesson is not live at the moment, so nothing is sent.",
    not_found: "This lesson no longer exists.",
  };
  const FRAME_HISTORY = 500;
  const JPEG_TYPE = "image/jpeg";
  const FACE_CROPS_TYPE = "application/vnd.classpulse.face-crops.v1";
  // Detection times kept for the page's own measurement (tests, benchmarks).
  const TIMING_HISTORY = 200;
  const vision = window.ClassPulseVision;

  const fragment = new URLSearchParams(window.location.hash.slice(1));
  const token = fragment.get("token") || "";
  const lessonId =
    fragment.get("lesson") ||
    decodeURIComponent(window.location.pathname.split("/").filter(Boolean).pop() || "");
  const requestedInterval = Number.parseFloat(fragment.get("interval") || "");
  // "http" skips the WebSocket (networks that block it); otherwise HTTP is the fallback.
  const transportChoice = fragment.get("transport") === "http" ? "http" : "auto";

  /** State shared with tests and the page; read it, do not write it. */
  const classroom = {
    state: "loading", // loading | ready | refused | starting | running | paused | stopped | error
    lessonId,
    interval: DEFAULT_INTERVAL_S,
    transport: null, // "websocket" | "http" once frames flow
    sent: 0, // send attempts, retries included
    acked: 0, // distinct frames the server accepted
    retries: 0,
    results: 0,
    errors: [], // {seq, status, code, message, at}
    lastResult: null,
    frames: [], // {seq, capturedAt, attempts, frameId, ackedAt, result}
    me: null,
    mode: null, // "crops" (faces found in the page) | "frames" (whole frames), once known
    modeReason: null, // why whole frames are sent, when the server asked for crops
    detectMs: [], // time to find and crop the faces of each frame, in ms
  };
  window.classroom = classroom;

  const $ = (id) => document.getElementById(id);
  const ui = {
    lesson: $("lesson"),
    intervalText: $("interval-text"),
    explain: $("explain"),
    consent: $("consent"),
    refuse: $("refuse"),
    session: $("session"),
    video: $("video"),
    result: $("result"),
    counts: $("counts"),
    stop: $("stop"),
    withdraw: $("withdraw"),
    status: $("status"),
    mode: $("mode"),
    cropNote: $("crop-note"),
  };
  const canvas = document.createElement("canvas");
  canvas.width = FRAME_WIDTH;
  canvas.height = FRAME_HEIGHT;
  const context = canvas.getContext("2d", { willReadFrequently: true });
  let detector = null;

  let stream = null;
  let socket = null;
  let socketRetryAt = 0;
  let tickTimer = null;
  let inFlight = false;
  let lastSeq = 0;
  let lastResultSeq = -1;
  // Cancels pending waits and requests when the student stops.
  let halt = new AbortController();
  const pendingAcks = new Map(); // seq -> {resolve, timer}

  // ---------------------------------------------------------------- helpers

  function say(message, kind = "error") {
    ui.status.textContent = message;
    ui.status.className = kind === "info" ? "status info" : "status";
  }

  function setState(state) {
    classroom.state = state;
    document.body.dataset.state = state;
  }

  function sharing() {
    return classroom.state === "running" || classroom.state === "paused";
  }

  function apiUrl(path) {
    return `/v1/lessons/${encodeURIComponent(lessonId)}${path}`;
  }

  function authHeaders(extra = {}) {
    return { Authorization: `Bearer ${token}`, ...extra };
  }

  function sleep(ms) {
    const signal = halt.signal;
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      signal.addEventListener("abort", () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  function backoffMs(attempt, retryAfterS) {
    const exponential = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (attempt - 1));
    const jittered = exponential * (0.75 + Math.random() * 0.5);
    return Math.max(jittered, (retryAfterS || 0) * 1000);
  }

  async function errorOf(response) {
    try {
      const body = await response.json();
      if (body && body.error) return body.error;
    } catch (_) {
      // not JSON: fall through to the status line
    }
    return { code: `http_${response.status}`, message: response.statusText, field: null };
  }

  function describeResult(result) {
    if (result.status === "failed" || result.status === "expired") {
      return "This image could not be processed";
    }
    if (!result.faces) return "No face identified";
    const label = (result.labels || []).find((l) => l);
    const many = result.faces > 1 ? ` (${result.faces} faces)` : "";
    return label ? `Displayed expression: ${label}${many}` : `Face identified${many}`;
  }

  function showCounts() {
    const via = classroom.transport ? ` via ${classroom.transport}` : "";
    ui.counts.textContent = `${classroom.acked} images sent${via}; each is deleted once processed.`;
  }

  function remember(frame) {
    classroom.frames.push(frame);
    if (classroom.frames.length > FRAME_HISTORY) classroom.frames.shift();
  }

  function findFrame(key, value) {
    for (let i = classroom.frames.length - 1; i >= 0; i -= 1) {
      if (classroom.frames[i][key] === value) return classroom.frames[i];
    }
    return null;
  }

  // ---------------------------------------------------------------- socket

  function onSocketMessage(event) {
    let message;
    try {
      message = JSON.parse(event.data);
    } catch (_) {
      return;
    }
    if (message.type === "result") {
      onResult(message);
      return;
    }
    const waiting = message.seq === null ? null : pendingAcks.get(message.seq);
    if (waiting) {
      pendingAcks.delete(message.seq);
      clearTimeout(waiting.timer);
      waiting.resolve(
        message.type === "ack"
          ? { ok: true, frameId: message.frame_id }
          : {
              ok: false,
              status: null,
              error: message.error,
              retryAfter: message.retry_after,
              retry: message.retry_after !== null && message.retry_after !== undefined,
            },
      );
    } else if (message.type === "error" && FATAL_CODES[message.error.code]) {
      // A connection-level refusal (bad token): the server closes the socket next.
      stopSharing(FATAL_CODES[message.error.code], "error");
    }
  }

  function dropSocket() {
    if (socket) {
      socket.onclose = null;
      socket.onmessage = null;
      socket.close();
      socket = null;
    }
    for (const [seq, waiting] of pendingAcks) {
      clearTimeout(waiting.timer);
      waiting.resolve({
        ok: false,
        retry: true,
        retryAfter: null,
        error: { code: "connection_lost", message: "the connection closed", field: null },
      });
      pendingAcks.delete(seq);
    }
  }

  function openSocket() {
    const scheme = window.location.protocol === "https:" ? "wss" : "ws";
    const url = `${scheme}://${window.location.host}${apiUrl("/stream")}?token=${encodeURIComponent(token)}`;
    return new Promise((resolve) => {
      let settled = false;
      const candidate = new WebSocket(url);
      const finish = (ok) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (!ok) {
          candidate.onclose = null;
          candidate.close();
        }
        resolve(ok ? candidate : null);
      };
      const timer = setTimeout(() => finish(false), SOCKET_OPEN_TIMEOUT_MS);
      candidate.onopen = () => finish(true);
      candidate.onerror = () => finish(false);
      candidate.onclose = () => finish(false);
    });
  }

  async function ensureSocket() {
    if (transportChoice === "http") return null;
    if (socket && socket.readyState === WebSocket.OPEN) return socket;
    if (Date.now() < socketRetryAt) return null;
    const opened = await openSocket();
    if (!opened || !sharing()) {
      if (opened) opened.close();
      socketRetryAt = Date.now() + SOCKET_RETRY_MS;
      return null;
    }
    socket = opened;
    socket.onmessage = onSocketMessage;
    socket.onclose = () => {
      // The server or a proxy dropped the socket: use HTTP for a while rather
      // than reconnecting for every frame.
      socket = null;
      socketRetryAt = Date.now() + SOCKET_RETRY_MS;
      dropSocket();
    };
    return socket;
  }

  function sendOverSocket(ws, frame) {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        // No answer: the connection is broken even if it looks open.
        dropSocket();
      }, ACK_TIMEOUT_MS);
      pendingAcks.set(frame.seq, { resolve, timer });
      ws.send(JSON.stringify({ seq: frame.seq, captured_at: frame.capturedAt }));
      ws.send(frame.blob);
    });
  }

  // ---------------------------------------------------------------- HTTP

  async function sendOverHttp(frame) {
    const query = new URLSearchParams({ seq: String(frame.seq), captured_at: frame.capturedAt });
    let response;
    try {
      response = await fetch(`${apiUrl("/frames")}?${query}`, {
        method: "POST",
        headers: authHeaders({ "Content-Type": frame.contentType }),
        body: frame.blob,
        signal: halt.signal,
      });
    } catch (err) {
      return {
        ok: false,
        retry: true,
        retryAfter: null,
        error: { code: "network_error", message: String(err), field: null },
      };
    }
    if (response.status === 202) {
      const body = await response.json();
      return { ok: true, frameId: body.frame_id };
    }
    const retryAfter = Number.parseFloat(response.headers.get("Retry-After") || "");
    return {
      ok: false,
      status: response.status,
      error: await errorOf(response),
      retryAfter: Number.isFinite(retryAfter) ? retryAfter : null,
      retry: RETRYABLE_STATUS.has(response.status),
    };
  }

  // ---------------------------------------------------------------- frames

  async function sendOnce(frame) {
    const ws = await ensureSocket();
    if (!sharing()) return null;
    classroom.sent += 1;
    frame.attempts += 1;
    if (ws) {
      classroom.transport = "websocket";
      return sendOverSocket(ws, frame);
    }
    classroom.transport = "http";
    return sendOverHttp(frame);
  }

  /** Send one frame until the server accepts it; retries keep its seq so it lands once. */
  async function deliver(frame) {
    for (let attempt = 1; ; attempt += 1) {
      if (!sharing()) return;
      const outcome = await sendOnce(frame);
      if (outcome === null || !sharing()) return;
      if (outcome.ok) {
        frame.frameId = outcome.frameId;
        frame.ackedAt = Date.now();
        classroom.acked += 1;
        showCounts();
        return;
      }
      const error = outcome.error || { code: "error", message: "unknown error" };
      classroom.errors.push({
        seq: frame.seq,
        status: outcome.status ?? null,
        code: error.code,
        message: error.message,
        at: Date.now(),
      });
      if (FATAL_CODES[error.code]) {
        stopSharing(FATAL_CODES[error.code], "error");
        return;
      }
      if (!outcome.retry || attempt >= MAX_ATTEMPTS) {
        say(`An image was not accepted: ${error.message}`);
        return;
      }
      classroom.retries += 1;
      const wait = backoffMs(attempt, outcome.retryAfter);
      say(`The server is busy; trying again in ${Math.ceil(wait / 1000)} s.`, "info");
      await sleep(wait);
    }
  }

  function showMode() {
    ui.mode.textContent =
      classroom.mode === "crops"
        ? "Faces are found on this device: only a small crop of each face is sent."
        : classroom.modeReason
          ? `Whole camera images are sent: ${classroom.modeReason}`
          : "Whole camera images are sent.";
  }

  /** Crops mode when the server asks for it and the detector loads; whole frames otherwise. */
  async function chooseMode() {
    const config = classroom.me && classroom.me.client_detection;
    if (!config) {
      classroom.mode = "frames";
    } else {
      try {
        if (!vision || !vision.createDetector) throw new Error("the face finder is not installed");
        detector = detector || (await vision.createDetector(config));
        classroom.mode = "crops";
      } catch (err) {
        detector = null;
        classroom.mode = "frames";
        classroom.modeReason = `the face finder could not be loaded (${err.message}).`;
      }
    }
    showMode();
  }

  /** The faces of the current picture as a face-crops body (only crops leave the device). */
  async function faceCrops(config) {
    const started = performance.now();
    const pixels = context.getImageData(0, 0, FRAME_WIDTH, FRAME_HEIGHT).data;
    const faces = vision.studentFace(await detector.detect(pixels, FRAME_WIDTH, FRAME_HEIGHT));
    const crops = faces.map((f) => vision.alignedCrop(pixels, FRAME_WIDTH, FRAME_HEIGHT, f.keypoints, config));
    classroom.detectMs.push(performance.now() - started);
    if (classroom.detectMs.length > TIMING_HISTORY) classroom.detectMs.shift();
    return vision.faceCropsBody(faces, crops, FRAME_WIDTH, FRAME_HEIGHT, config.detector, config.crop_side);
  }

  function grab() {
    const video = ui.video;
    const width = video.videoWidth;
    const height = video.videoHeight;
    if (!width || !height) return Promise.resolve(null);
    // Centre-crop to 4:3 rather than stretch: distorted faces are harder to read.
    const target = FRAME_WIDTH / FRAME_HEIGHT;
    let sw = width;
    let sh = height;
    if (width / height > target) sw = height * target;
    else sh = width / target;
    context.drawImage(video, (width - sw) / 2, (height - sh) / 2, sw, sh, 0, 0, FRAME_WIDTH, FRAME_HEIGHT);
    if (classroom.mode === "crops") {
      return faceCrops(classroom.me.client_detection).catch((err) => {
        // The detector broke mid-lesson: say so and send whole frames from now on.
        detector = null;
        classroom.mode = "frames";
        classroom.modeReason = `the face finder stopped working (${err.message}).`;
        showMode();
        return null;
      });
    }
    return new Promise((resolve) => canvas.toBlob(resolve, JPEG_TYPE, JPEG_QUALITY));
  }

  async function tick() {
    tickTimer = null;
    if (classroom.state !== "running") return;
    tickTimer = setTimeout(tick, classroom.interval * 1000);
    if (inFlight || document.hidden) return; // one frame at a time; none while hidden
    inFlight = true;
    try {
      const capturedAt = new Date();
      const blob = await grab();
      if (!blob || classroom.state !== "running") return;
      // Milliseconds since the epoch: unique across reloads of the page, so a
      // new frame is never mistaken for a retry of an old one.
      lastSeq = Math.max(lastSeq + 1, capturedAt.getTime());
      const frame = {
        seq: lastSeq,
        capturedAt: capturedAt.toISOString(),
        capturedAtMs: capturedAt.getTime(),
        attempts: 0,
        frameId: null,
        ackedAt: null,
        result: null,
        kind: classroom.mode,
        contentType: classroom.mode === "crops" ? FACE_CROPS_TYPE : JPEG_TYPE,
        bytes: blob.size,
        blob,
      };
      remember(frame);
      await deliver(frame);
      frame.blob = null; // keep no image in memory once it is delivered
    } finally {
      inFlight = false;
    }
  }

  function onResult(message) {
    classroom.results += 1;
    const frame = findFrame("frameId", message.frame_id);
    if (frame) frame.result = message;
    const seq = message.seq ?? (frame ? frame.seq : -1);
    if (seq < lastResultSeq) return; // an older frame finished late
    lastResultSeq = seq;
    classroom.lastResult = message;
    ui.result.textContent = describeResult(message);
  }

  // ---------------------------------------------------------------- life cycle

  function stopSharing(message, state = "stopped") {
    const wasActive = sharing() || classroom.state === "starting";
    setState(state);
    halt.abort();
    halt = new AbortController();
    if (tickTimer !== null) clearTimeout(tickTimer);
    tickTimer = null;
    dropSocket();
    if (stream) {
      for (const track of stream.getTracks()) track.stop();
      stream = null;
    }
    ui.video.srcObject = null;
    ui.stop.disabled = true;
    ui.result.textContent = "Stopped: nothing is being sent.";
    if (message) say(message, state === "error" ? "error" : "info");
    if (wasActive) {
      ui.refuse.hidden = true; // consent was given: "Stop and withdraw" is the way back
      ui.consent.disabled = state === "error";
      ui.consent.textContent = "Start sharing again";
      ui.explain.hidden = false;
    }
  }

  async function changeConsent(method) {
    const response = await fetch(apiUrl("/consent"), { method, headers: authHeaders() });
    if (!response.ok) throw new Error((await errorOf(response)).message);
    return response.json();
  }

  async function start() {
    ui.consent.disabled = true;
    ui.refuse.disabled = true;
    setState("starting");
    say("");
    try {
      await changeConsent("PUT");
    } catch (err) {
      setState("ready");
      ui.consent.disabled = false;
      ui.refuse.disabled = false;
      say(`Consent could not be recorded: ${err.message}`);
      return;
    }
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        video: { width: { ideal: FRAME_WIDTH }, height: { ideal: FRAME_HEIGHT }, facingMode: "user" },
        audio: false,
      });
    } catch (err) {
      stopSharing(`The camera is not available (${err.name}). Nothing is sent.`, "error");
      ui.consent.disabled = false;
      return;
    }
    if (classroom.state !== "starting") {
      // Stopped while the camera prompt was open.
      for (const track of stream.getTracks()) track.stop();
      stream = null;
      return;
    }
    ui.video.srcObject = stream;
    await chooseMode();
    if (classroom.state !== "starting") return; // stopped while the detector loaded
    await new Promise((resolve) => {
      if (ui.video.readyState >= 1) resolve();
      else ui.video.addEventListener("loadedmetadata", resolve, { once: true });
    });
    ui.explain.hidden = true;
    ui.session.hidden = false;
    ui.stop.disabled = false;
    ui.result.textContent = "Sharing: the displayed expression appears here.";
    setState(document.hidden ? "paused" : "running");
    showCounts();
    if (classroom.state === "running") tick();
  }

  async function refuse() {
    ui.refuse.disabled = true;
    try {
      if (classroom.me && classroom.me.own_consent) await changeConsent("DELETE");
    } catch (err) {
      say(`Your refusal could not be recorded: ${err.message}`);
    }
    setState("refused");
    ui.consent.disabled = false;
    say("Nothing is shared. You can close this page, or agree later.", "info");
  }

  async function withdraw() {
    stopSharing("");
    try {
      await changeConsent("DELETE");
      say("Consent withdrawn: nothing more is processed.", "info");
    } catch (err) {
      say(`Consent could not be withdrawn: ${err.message}`);
    }
  }

  function onVisibility() {
    if (document.hidden && classroom.state === "running") {
      setState("paused");
      if (tickTimer !== null) clearTimeout(tickTimer);
      tickTimer = null;
      ui.result.textContent = "Paused while this tab is hidden.";
    } else if (!document.hidden && classroom.state === "paused") {
      setState("running");
      ui.result.textContent = "Sharing: the displayed expression appears here.";
      tick();
    }
  }

  async function load() {
    setState("loading");
    if (!token || !lessonId) {
      setState("error");
      ui.lesson.textContent = "";
      say("This link is incomplete: open the classroom link your teacher or school sent.");
      return;
    }
    const chosen = Number.isFinite(requestedInterval) ? requestedInterval : null;
    let me;
    try {
      const response = await fetch(apiUrl("/me"), { headers: authHeaders() });
      if (!response.ok) {
        const error = await errorOf(response);
        setState("error");
        say(FATAL_CODES[error.code] || error.message);
        return;
      }
      me = await response.json();
    } catch (err) {
      setState("error");
      say(`The server cannot be reached (${err.message}).`);
      return;
    }
    classroom.me = me;
    const interval = chosen ?? me.frame_interval_seconds ?? DEFAULT_INTERVAL_S;
    classroom.interval = Math.min(MAX_INTERVAL_S, Math.max(MIN_INTERVAL_S, interval));
    const n = classroom.interval;
    ui.intervalText.textContent = n === 1 ? "second" : `${n} seconds`;
    ui.lesson.textContent = me.lesson_live
      ? `Lesson: ${me.lesson_title}`
      : `Lesson: ${me.lesson_title} (not live now: nothing can be sent until it starts)`;
    setState("ready");
    ui.refuse.disabled = false;
    classroom.mode = me.client_detection ? null : "frames";
    ui.cropNote.hidden = !me.client_detection; // promise crops only where the server asks
    if (!me.client_detection) showMode();
    if (me.school_permission === false) {
      // Both parts are needed: the student's agreement alone would send frames
      // that are all refused.
      say("Your school has not allowed sharing in this lesson, so nothing can be sent.", "info");
      return;
    }
    ui.consent.disabled = false;
  }

  ui.consent.addEventListener("click", start);
  ui.refuse.addEventListener("click", refuse);
  ui.stop.addEventListener("click", () => stopSharing("Stopped: nothing more is sent."));
  ui.withdraw.addEventListener("click", withdraw);
  document.addEventListener("visibilitychange", onVisibility);
  window.addEventListener("pagehide", () => {
    if (sharing()) stopSharing("");
  });
  load();
})();
