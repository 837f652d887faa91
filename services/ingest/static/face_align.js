// Eye-level alignment of a face in the page, step for step as shared/vision/align.py.
//
// The worker's aligned_crop turns the face's region gray, shrinks a large
// face by area averaging, warps it bilinearly onto the FER2013 keypoints at
// twice the model's 48 px, then area-averages to 48. The page does all but
// the last step and sends the 96 px crop; the worker does the last one, so
// the pixels the classifier sees are made as for a whole frame (OpenCV's
// fixed-point rounding aside: within one gray level).
"use strict";

(() => {
  const vision = (window.ClassPulseVision = window.ClassPulseVision || {});

  /** Python's round(): halves go to the even neighbour (cv2 sizes are computed with it). */
  function roundHalfEven(x) {
    const floor = Math.floor(x);
    const diff = x - floor;
    if (diff > 0.5) return floor + 1;
    if (diff < 0.5) return floor;
    return floor % 2 === 0 ? floor : floor + 1;
  }

  /** Gray level of RGBA pixels as OpenCV's COLOR_BGR2GRAY computes it (14-bit fixed point). */
  function grayOf(rgba, width, x0, y0, x1, y1) {
    const w = x1 - x0;
    const out = new Uint8Array(w * (y1 - y0));
    for (let y = y0; y < y1; y += 1) {
      let i = (y * width + x0) * 4;
      let o = (y - y0) * w;
      for (let x = x0; x < x1; x += 1, i += 4, o += 1) {
        out[o] = (rgba[i] * 4899 + rgba[i + 1] * 9617 + rgba[i + 2] * 1868 + 8192) >> 14;
      }
    }
    return out;
  }

  /** OpenCV's INTER_AREA weights along one axis: [source index, destination index, weight]. */
  function areaTable(srcSize, dstSize) {
    const scale = srcSize / dstSize;
    const table = [];
    for (let dx = 0; dx < dstSize; dx += 1) {
      const fsx1 = dx * scale;
      const fsx2 = fsx1 + scale;
      const cell = Math.min(scale, srcSize - fsx1);
      let sx2 = Math.min(Math.floor(fsx2), srcSize - 1);
      const sx1 = Math.min(Math.ceil(fsx1), sx2);
      if (sx1 - fsx1 > 1e-3) table.push([sx1 - 1, dx, (sx1 - fsx1) / cell]);
      for (let sx = sx1; sx < sx2; sx += 1) table.push([sx, dx, 1 / cell]);
      if (fsx2 - sx2 > 1e-3) table.push([sx2, dx, Math.min(Math.min(fsx2 - sx2, 1), cell) / cell]);
    }
    return table;
  }

  /** Area-averaged shrink of a one-channel image (cv2.resize with INTER_AREA). */
  function resizeArea(src, sw, sh, dw, dh) {
    const xs = areaTable(sw, dw);
    const ys = areaTable(sh, dh);
    const rows = new Float64Array(dw * sh);
    for (let y = 0; y < sh; y += 1) {
      const base = y * sw;
      const out = y * dw;
      for (const [sx, dx, w] of xs) rows[out + dx] += src[base + sx] * w;
    }
    const acc = new Float64Array(dw * dh);
    for (const [sy, dy, w] of ys) {
      const from = sy * dw;
      const to = dy * dw;
      for (let x = 0; x < dw; x += 1) acc[to + x] += rows[from + x] * w;
    }
    const out = new Uint8Array(dw * dh);
    for (let i = 0; i < out.length; i += 1) out[i] = Math.min(255, Math.max(0, Math.round(acc[i])));
    return out;
  }

  /** 2x3 map from frame pixels to a size x size crop framed as FER2013 faces (alignment_matrix). */
  function alignmentMatrix(kp, size, config) {
    const k = size / config.model_input_side;
    const dst = config.fer_keypoints.map(([x, y]) => [x * k, y * k]);
    const [re, le] = kp;
    const angle = -Math.atan2(le[1] - re[1], le[0] - re[0]);
    const c = Math.cos(angle);
    const s = Math.sin(angle);
    const turned = kp.map(([x, y]) => [c * x - s * y, s * x + c * y]);
    const mean = (pts) => [
      pts.reduce((a, p) => a + p[0], 0) / pts.length,
      pts.reduce((a, p) => a + p[1], 0) / pts.length,
    ];
    const [tx, ty] = mean(turned);
    const [dxm, dym] = mean(dst);
    let norm = 0;
    let dot = 0;
    for (let i = 0; i < turned.length; i += 1) {
      const sx = turned[i][0] - tx;
      const sy = turned[i][1] - ty;
      norm += sx * sx + sy * sy;
      dot += sx * (dst[i][0] - dxm) + sy * (dst[i][1] - dym);
    }
    let scale = norm > 0 ? dot / norm : 1;
    if (scale <= 0) {
      // Degenerate keypoints: fall back to the eye distance.
      scale = (dst[1][0] - dst[0][0]) / Math.max(1e-6, Math.hypot(le[0] - re[0], le[1] - re[1]));
    }
    return [
      [scale * c, -scale * s, dxm - tx * scale],
      [scale * s, scale * c, dym - ty * scale],
    ];
  }

  function invertAffine(m) {
    const [[a, b, tx], [c, d, ty]] = m;
    const det = a * d - b * c;
    const ia = d / det;
    const ib = -b / det;
    const ic = -c / det;
    const id = a / det;
    return [
      [ia, ib, -(ia * tx + ib * ty)],
      [ic, id, -(ic * tx + id * ty)],
    ];
  }

  /** Bilinear warp of a one-channel image with replicated borders (cv2.warpAffine). */
  function warpAffine(src, sw, sh, matrix, size) {
    const [[a, b, c], [d, e, f]] = invertAffine(matrix);
    const out = new Uint8Array(size * size);
    for (let v = 0; v < size; v += 1) {
      for (let u = 0; u < size; u += 1) {
        const x = a * u + b * v + c;
        const y = d * u + e * v + f;
        const x0 = Math.floor(x);
        const y0 = Math.floor(y);
        const fx = x - x0;
        const fy = y - y0;
        const cx0 = Math.min(sw - 1, Math.max(0, x0));
        const cx1 = Math.min(sw - 1, Math.max(0, x0 + 1));
        const cy0 = Math.min(sh - 1, Math.max(0, y0));
        const cy1 = Math.min(sh - 1, Math.max(0, y0 + 1));
        const top = src[cy0 * sw + cx0] * (1 - fx) + src[cy0 * sw + cx1] * fx;
        const bottom = src[cy1 * sw + cx0] * (1 - fx) + src[cy1 * sw + cx1] * fx;
        out[v * size + u] = Math.round(top * (1 - fy) + bottom * fy);
      }
    }
    return out;
  }

  /**
   * The crop_side x crop_side gray crop of one face of an RGBA frame: aligned_crop
   * without its final 2x area step, which the worker does.
   */
  function alignedCrop(rgba, width, height, keypoints, config) {
    const big = config.crop_side;
    const matrix = alignmentMatrix(keypoints, big, config);
    const inv = invertAffine(matrix);
    const corners = [
      [0, 0],
      [big, 0],
      [big, big],
      [0, big],
    ].map(([u, v]) => [inv[0][0] * u + inv[0][1] * v + inv[0][2], inv[1][0] * u + inv[1][1] * v + inv[1][2]]);
    const clip = (value, lo, hi) => Math.min(hi, Math.max(lo, value));
    const cxs = corners.map((p) => p[0]);
    const cys = corners.map((p) => p[1]);
    const x0 = clip(Math.floor(Math.min(...cxs)) - 2, 0, width - 1);
    const y0 = clip(Math.floor(Math.min(...cys)) - 2, 0, height - 1);
    const x1 = clip(Math.ceil(Math.max(...cxs)) + 2, x0 + 1, width);
    const y1 = clip(Math.ceil(Math.max(...cys)) + 2, y0 + 1, height);
    let region = grayOf(rgba, width, x0, y0, x1, y1);
    let rw = x1 - x0;
    let rh = y1 - y0;
    // Shrink a large face first (area averaging) to about the warp's scale.
    const scale = Math.sqrt(Math.abs(matrix[0][0] * matrix[1][1] - matrix[0][1] * matrix[1][0]));
    if (scale < 1) {
      const nw = Math.max(1, roundHalfEven(rw * scale));
      const nh = Math.max(1, roundHalfEven(rh * scale));
      region = resizeArea(region, rw, rh, nw, nh);
      rw = nw;
      rh = nh;
    }
    const sx = rw / (x1 - x0);
    const sy = rh / (y1 - y0);
    // region -> crop: the frame -> crop matrix after undoing frame -> region.
    const warp = [
      [matrix[0][0] / sx, matrix[0][1] / sy, matrix[0][0] * x0 + matrix[0][1] * y0 + matrix[0][2]],
      [matrix[1][0] / sx, matrix[1][1] / sy, matrix[1][0] * x0 + matrix[1][1] * y0 + matrix[1][2]],
    ];
    return warpAffine(region, rw, rh, warp, big);
  }

  Object.assign(vision, { roundHalfEven, grayOf, resizeArea, alignmentMatrix, alignedCrop });
})();
