// ImageKit's documented Node pattern: Express + imagekit's getAuthenticationParameters().
const express = require("express");
const ImageKit = require("imagekit");

const imagekit = new ImageKit({
  publicKey: process.env.IMAGEKIT_PUBLIC_KEY,
  privateKey: process.env.IMAGEKIT_PRIVATE_KEY,
  urlEndpoint: "https://ik.imagekit.io/bench",
});
const app = express();
app.get("/v1/auth", (req, res) => res.json(imagekit.getAuthenticationParameters()));
app.get("/healthz", (req, res) => res.send("ok"));
app.listen(Number(process.env.PORT), "127.0.0.1");
