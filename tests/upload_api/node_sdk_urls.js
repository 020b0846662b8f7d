// Signed URLs built by ImageKit's official Node SDK (`imagekit` on npm, as installed in
// tests/browser), at a fixed time: node node_sdk_urls.js NOW PRIVATE_KEY URL_ENDPOINT JSON
// where JSON is [[path, expireSeconds or null], ...]; prints the URLs as a JSON array.
const path = require("path");
const ImageKit = require(path.join(__dirname, "..", "browser", "node_modules", "imagekit"));
const [now, privateKey, urlEndpoint, requests] = process.argv.slice(2);
const fixed = Number(now) * 1000;
Date.prototype.getTime = function () { return fixed; };  // the SDK reads the time this way
const imagekit = new ImageKit({ publicKey: "public_unused", privateKey, urlEndpoint });
const urls = JSON.parse(requests).map(([src, expireSeconds]) =>
  imagekit.url(expireSeconds ? { path: src, signed: true, expireSeconds } : { path: src, signed: true }),
);
console.log(JSON.stringify(urls));
