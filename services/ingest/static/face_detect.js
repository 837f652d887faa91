// BlazeFace in the page, decoded as shared/vision/blazeface.py decodes it.
//
// ONNX Runtime Web (vendor/onnxruntime-web, WebAssembly, one thread, no
// worker) runs the workers' own weights, fetched from this server. The frame
// is letterboxed as the worker does (area-average by a whole factor, then
// bilinear), the outputs are decoded against MediaPipe's SSD anchors and
// merged by weighted NMS; every number comes from the server (/me's
// client_detection), so page and worker cannot drift apart.
"use strict";

(() => {
  const vision = (window.ClassPulseVision = window.ClassPulseVision || {});
  const ORT_DIR = "/static/vendor/onnxruntime-web/";
  const ORT_SCRIPT = `${ORT_DIR}ort.wasm-core.min.js`;

  function loadScript(src) {
    return new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = src;
      script.onload = resolve;
      script.onerror = () => reject(new Error(`${src} could not be loaded`));
      document.head.appendChild(script);
    });
  }

  /** Anchor centres in input pixels, in the model's output order (ssd_anchor_centres). */
  function anchorCentres(config) {
    const { strides, input_size: size, interpolated_anchor: interpolated } = config;
    const centres = [];
    let layer = 0;
    while (layer < strides.length) {
      let last = layer;
      let repeats = 0;
      while (last < strides.length && strides[last] === strides[layer]) {
        repeats += interpolated ? 2 : 1;
        last += 1;
      }
      const cells = Math.floor(size / strides[layer]);
      for (let y = 0; y < cells; y += 1) {
        for (let x = 0; x < cells; x += 1) {
          for (let r = 0; r < repeats; r += 1) {
            centres.push([((x + 0.5) / cells) * size, ((y + 0.5) / cells) * size]);
          }
        }
      }
      layer = last;
    }
    return centres;
  }

  /** Block means of an RGBA image by a whole factor (shared/vision/detect.py's shrink, first step). */
  function blockMean(rgba, width, height, factor) {
    const w = Math.floor(width / factor);
    const h = Math.floor(height / factor);
    const out = new Uint8ClampedArray(w * h * 4);
    const n = factor * factor;
    for (let y = 0; y < h; y += 1) {
      for (let x = 0; x < w; x += 1) {
        for (let ch = 0; ch < 3; ch += 1) {
          let sum = 0;
          for (let dy = 0; dy < factor; dy += 1) {
            let i = ((y * factor + dy) * width + x * factor) * 4 + ch;
            for (let dx = 0; dx < factor; dx += 1, i += 4) sum += rgba[i];
          }
          out[(y * w + x) * 4 + ch] = Math.round(sum / n);
        }
      }
    }
    return { data: out, width: w, height: h };
  }

  /** The letterboxed NHWC tensor data (RGB in -1..1, padding -1), with its scale and padding. */
  function letterbox(rgba, width, height, size) {
    const scale = size / Math.max(width, height);
    const newW = Math.max(1, vision.roundHalfEven(width * scale));
    const newH = Math.max(1, vision.roundHalfEven(height * scale));
    let image = { data: rgba, width, height };
    const factor = Math.floor(Math.min(width / newW, height / newH));
    if (factor >= 2) image = blockMean(rgba, width, height, factor);
    const tensor = new Float32Array(size * size * 3).fill(-1);
    const padX = Math.floor((size - newW) / 2);
    const padY = Math.floor((size - newH) / 2);
    // Bilinear with half-pixel centres, as cv2.resize's INTER_LINEAR.
    const fx = image.width / newW;
    const fy = image.height / newH;
    const src = image.data;
    for (let y = 0; y < newH; y += 1) {
      let sy = (y + 0.5) * fy - 0.5;
      let y0 = Math.floor(sy);
      let wy = sy - y0;
      if (y0 < 0) [y0, wy] = [0, 0];
      const y1 = Math.min(image.height - 1, y0 + 1);
      if (y0 >= image.height - 1) [y0, wy] = [image.height - 1, 0];
      for (let x = 0; x < newW; x += 1) {
        let sx = (x + 0.5) * fx - 0.5;
        let x0 = Math.floor(sx);
        let wx = sx - x0;
        if (x0 < 0) [x0, wx] = [0, 0];
        const x1 = Math.min(image.width - 1, x0 + 1);
        if (x0 >= image.width - 1) [x0, wx] = [image.width - 1, 0];
        const o = ((padY + y) * size + padX + x) * 3;
        for (let ch = 0; ch < 3; ch += 1) {
          const a = src[(y0 * image.width + x0) * 4 + ch];
          const b = src[(y0 * image.width + x1) * 4 + ch];
          const c = src[(y1 * image.width + x0) * 4 + ch];
          const d = src[(y1 * image.width + x1) * 4 + ch];
          const top = a + (b - a) * wx;
          const bottom = c + (d - c) * wx;
          tensor[o + ch] = Math.round(top + (bottom - top) * wy) / 127.5 - 1;
        }
      }
    }
    return { tensor, scale, padX, padY };
  }

  function iou(a, b) {
    const w = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
    const h = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
    const inter = w * h;
    const union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    return union > 0 ? inter / Math.max(union, 1e-12) : 0;
  }

  /** MediaPipe's weighted NMS: each cluster becomes its score-weighted mean row (nms.py). */
  function weightedNms(rows, scores, threshold) {
    let order = scores.map((s, i) => i).sort((i, j) => scores[j] - scores[i] || i - j);
    const out = [];
    while (order.length) {
      const first = rows[order[0]];
      const cluster = order.filter((i, k) => k === 0 || iou(first, rows[i]) > threshold);
      const total = cluster.reduce((a, i) => a + scores[i], 0);
      const mean = first.map((_, c) => cluster.reduce((a, i) => a + rows[i][c] * scores[i], 0) / total);
      out.push({ row: mean, score: scores[order[0]] });
      const merged = new Set(cluster);
      order = order.filter((i) => !merged.has(i));
    }
    return out;
  }

  /** Loads ONNX Runtime and the model; resolves to an object whose detect() finds faces. */
  async function createDetector(config) {
    if (typeof WebAssembly !== "object" || typeof CompressionStream !== "function") {
      throw new Error("this browser cannot run the face detector");
    }
    if (!window.ort) await loadScript(ORT_SCRIPT);
    const ort = window.ort;
    ort.env.wasm.wasmPaths = ORT_DIR;
    ort.env.wasm.numThreads = 1; // no SharedArrayBuffer, no worker: one vendored .wasm
    ort.env.wasm.proxy = false;
    const response = await fetch(config.model_url);
    if (!response.ok) throw new Error(`the face detector model is missing (${response.status})`);
    const session = await ort.InferenceSession.create(await response.arrayBuffer(), {
      executionProviders: ["wasm"],
    });
    const anchors = anchorCentres(config);
    const size = config.input_size;
    const [regressorsName, scoresName] = session.outputNames;

    /** Faces of an RGBA frame, left to right: {score, box [x0,y0,x1,y1], keypoints [[x,y] x4]}. */
    async function detect(rgba, width, height) {
      const { tensor, scale, padX, padY } = letterbox(rgba, width, height, size);
      const input = new ort.Tensor("float32", tensor, [1, size, size, 3]);
      const outputs = await session.run({ [session.inputNames[0]]: input });
      const regressors = outputs[regressorsName].data;
      const logits = outputs[scoresName].data;
      const stride = regressors.length / anchors.length;
      const rows = [];
      const scores = [];
      const limit = config.raw_score_limit;
      for (let i = 0; i < anchors.length; i += 1) {
        const raw = Math.min(limit, Math.max(-limit, logits[i]));
        const score = 1 / (1 + Math.exp(-raw));
        if (score < config.min_score) continue;
        const r = regressors.subarray(i * stride, (i + 1) * stride);
        const [ax, ay] = anchors[i];
        const cx = r[0] + ax;
        const cy = r[1] + ay;
        const row = [cx - r[2] / 2, cy - r[3] / 2, cx + r[2] / 2, cy + r[3] / 2];
        for (let k = 0; k < 4; k += 1) row.push(r[4 + 2 * k] + ax, r[5 + 2 * k] + ay);
        if (row[2] > row[0] && row[3] > row[1]) {
          rows.push(row);
          scores.push(score);
        }
      }
      const minSide = Math.max(1, config.min_face_fraction * Math.min(width, height));
      const faces = [];
      for (const { row, score } of weightedNms(rows, scores, config.suppression_iou)) {
        const frame = row.map((v, c) => (v - (c % 2 === 0 ? padX : padY)) / scale);
        const [x0, y0, x1, y1] = frame;
        if (Math.min(x1 - x0, y1 - y0) < minSide) continue;
        // Boxes wholly outside the frame are dropped, as rows_to_detections does.
        if (Math.min(width, x1) - Math.max(0, x0) < 1 || Math.min(height, y1) - Math.max(0, y0) < 1) continue;
        const keypoints = [0, 1, 2, 3].map((k) => [frame[4 + 2 * k], frame[5 + 2 * k]]);
        faces.push({ score, box: [x0, y0, x1, y1], keypoints });
      }
      return faces.sort((a, b) => Math.max(0, a.box[0]) - Math.max(0, b.box[0]));
    }

    return { detect, detector: config.detector };
  }

  Object.assign(vision, { createDetector, anchorCentres, letterbox, weightedNms });
})();
