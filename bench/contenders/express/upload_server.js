// What people write for an upload endpoint in Node: Express + multer storing to disk.
const express = require("express");
const multer = require("multer");

const upload = multer({
  dest: process.env.BENCH_DIR,
  limits: { fileSize: 300 * 1024 * 1024 },
});
const app = express();
app.post("/upload", upload.single("file"), (req, res) =>
  res.json({ name: req.body.fileName, size: req.file.size, path: req.file.filename }),
);
app.get("/healthz", (req, res) => res.send("ok"));
app.listen(Number(process.env.PORT), "127.0.0.1");
