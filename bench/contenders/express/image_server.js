// The image server people write with Express and sharp (libvips): GET /img/<name>?w=&h=&f=
// resizes the stored image (cover-cropped when both sides are given, upright by its EXIF
// orientation) and encodes it at quality 80; each rendering is kept on disk and served from
// there afterwards. BENCH_DIR holds the originals, BENCH_CACHE the renderings.
const crypto = require("crypto");
const express = require("express");
const fs = require("fs");
const path = require("path");
const sharp = require("sharp");

const root = process.env.BENCH_DIR;
const cache = process.env.BENCH_CACHE;
const app = express();
app.get("/healthz", (req, res) => res.json({ status: "ok" }));
app.get("/img/:name", async (req, res) => {
  const width = parseInt(req.query.w, 10) || null;
  const height = parseInt(req.query.h, 10) || null;
  const format = req.query.f === "webp" ? "webp" : "jpeg";
  const key = crypto.createHash("sha256").update(`${req.params.name}|${width}|${height}|${format}`).digest("hex");
  const kept = path.join(cache, `${key}.${format}`);
  res.type(format);
  try {
    return res.send(await fs.promises.readFile(kept));
  } catch {}
  try {
    const out = await sharp(path.join(root, path.basename(req.params.name)))
      .rotate()
      .resize(width, height, { fit: "cover" })
      .toFormat(format, { quality: 80 })
      .toBuffer();
    await fs.promises.writeFile(kept, out);
    res.send(out);
  } catch (error) {
    res.status(404).json({ message: String(error) });
  }
});
app.listen(Number(process.env.PORT), "127.0.0.1");
