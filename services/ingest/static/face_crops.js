// A face-crops body (shared/face_crops.py): what the page sends instead of a frame.
//
// The crops are stacked top to bottom in one 8-bit gray PNG (lossless: the
// worker sees the page's pixels exactly), compressed with the browser's own
// CompressionStream("deflate"), whose zlib stream is what PNG's IDAT holds.
// The body is "CPFC", the JSON metadata's length (4 bytes, big-endian), the
// metadata, then the PNG (nothing when no face was found).
"use strict";

(() => {
  const vision = (window.ClassPulseVision = window.ClassPulseVision || {});
  const MAGIC = [0x43, 0x50, 0x46, 0x43]; // "CPFC"

  /**
   * The student's own face among those found: the largest (the one closest to
   * their webcam). Only it leaves the device; anyone else in view stays there, as
   * the consent text promises. An empty list when no face was found.
   */
  vision.studentFace = (faces) => {
    const area = (f) => (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]);
    return faces.length ? [faces.reduce((best, f) => (area(f) > area(best) ? f : best))] : [];
  };
  const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

  const CRC_TABLE = (() => {
    const table = new Uint32Array(256);
    for (let n = 0; n < 256; n += 1) {
      let c = n;
      for (let k = 0; k < 8; k += 1) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[n] = c >>> 0;
    }
    return table;
  })();

  function crc32(bytes) {
    let c = 0xffffffff;
    for (let i = 0; i < bytes.length; i += 1) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  }

  function chunk(type, data) {
    const out = new Uint8Array(12 + data.length);
    const view = new DataView(out.buffer);
    view.setUint32(0, data.length);
    for (let i = 0; i < 4; i += 1) out[4 + i] = type.charCodeAt(i);
    out.set(data, 8);
    view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
    return out;
  }

  async function deflate(bytes) {
    const stream = new Blob([bytes]).stream().pipeThrough(new CompressionStream("deflate"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }

  /** An 8-bit grayscale PNG of width x height pixels (filter "none" on every row). */
  async function grayPng(pixels, width, height) {
    const raw = new Uint8Array((width + 1) * height);
    for (let y = 0; y < height; y += 1) raw.set(pixels.subarray(y * width, (y + 1) * width), y * (width + 1) + 1);
    const header = new Uint8Array(13);
    const view = new DataView(header.buffer);
    view.setUint32(0, width);
    view.setUint32(4, height);
    header.set([8, 0, 0, 0, 0], 8); // 8 bits, gray, deflate, no filter method, no interlace
    const parts = [
      new Uint8Array(PNG_SIGNATURE),
      chunk("IHDR", header),
      chunk("IDAT", await deflate(raw)),
      chunk("IEND", new Uint8Array(0)),
    ];
    return new Blob(parts);
  }

  /**
   * The body for one frame: crops (crop_side x crop_side gray arrays) with their faces
   * ({score, box, keypoints}) found in a width x height frame by `detector`.
   */
  async function faceCropsBody(faces, crops, width, height, detector, side) {
    const meta = {
      kind: "face_crops",
      version: 1,
      frame_width: width,
      frame_height: height,
      detector,
      faces: faces.map((f) => ({ score: f.score, box: f.box, keypoints: f.keypoints })),
    };
    const json = new TextEncoder().encode(JSON.stringify(meta));
    const head = new Uint8Array(8);
    head.set(MAGIC, 0);
    new DataView(head.buffer).setUint32(4, json.length);
    if (!crops.length) return new Blob([head, json]);
    const strip = new Uint8Array(side * side * crops.length);
    crops.forEach((crop, i) => strip.set(crop, i * side * side));
    return new Blob([head, json, await grayPng(strip, side, side * crops.length)]);
  }

  Object.assign(vision, { grayPng, faceCropsBody });
})();
