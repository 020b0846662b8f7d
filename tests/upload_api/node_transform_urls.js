// Delivery URLs with transformations, built by ImageKit's official JavaScript SDKs as installed
// in tests/browser: @imagekit/nodejs's helper.buildSrc (signed or not), @imagekit/javascript's
// buildSrc and getResponsiveImageAttributes (the browser's srcset), and the older Node SDK
// `imagekit`'s url(). Reads {now, privateKey, urlEndpoint, cases: [{sdk, options}]} as JSON on
// stdin, the time fixed at `now` (Unix seconds); prints, per case, the list of its URLs.
const path = require("path");
const modules = path.join(__dirname, "..", "browser", "node_modules");
const { now, privateKey, urlEndpoint, cases } = JSON.parse(require("fs").readFileSync(0, "utf8"));
const fixed = Number(now) * 1000;
Date.now = () => fixed;
Date.prototype.getTime = function () { return fixed; };
const NodeSDK = require(path.join(modules, "@imagekit", "nodejs")).default;
const browser = require(path.join(modules, "@imagekit", "javascript"));
const LegacySDK = require(path.join(modules, "imagekit"));
const node = new NodeSDK({ privateKey, webhookSecret: "unused" });
const legacy = new LegacySDK({ publicKey: "public_unused", privateKey, urlEndpoint });
const built = cases.map(({ sdk, options }) => {
  const opts = { urlEndpoint, ...options };
  if (sdk === "nodejs") return [node.helper.buildSrc(opts)];
  if (sdk === "javascript") return [browser.buildSrc(opts)];
  if (sdk === "imagekit") return [legacy.url(opts)];
  if (sdk === "srcset") {
    const { src, srcSet } = browser.getResponsiveImageAttributes(opts);
    return [src, ...srcSet.split(", ").map((entry) => entry.split(" ")[0])];
  }
  throw new Error("unknown sdk " + sdk);
});
console.log(JSON.stringify(built));
