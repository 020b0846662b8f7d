// Webhook deliveries verified by ImageKit's official Node SDK (`imagekit` on npm, as installed
// in tests/browser): node node_verify.js SECRET < JSON, where JSON is [[body, x-ik-signature],
// ...]; prints, for each, the event's id and type, or the verifier's error.
const path = require("path");
const ImageKit = require(path.join(__dirname, "..", "browser", "node_modules", "imagekit"));
const imagekit = new ImageKit({ publicKey: "public_unused", privateKey: "private_unused", urlEndpoint: "http://unused" });
const secret = process.argv[2];
let input = "";
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", () => {
  const results = JSON.parse(input).map(([body, signature]) => {
    try {
      const { timestamp, event } = imagekit.verifyWebhookEvent(body, signature, secret);
      return { id: event.id, type: event.type, timestamp };
    } catch (error) {
      return { error: error.message };
    }
  });
  console.log(JSON.stringify(results));
});
