// One HTTPS request with Node's https module and a client certificate, as seed 000/003 show it.
// Usage: node https_get.js '{"url": ..., "ca": FILE, "cert": FILE, "key": FILE,
//                             "passphrase": ..., "headers": {...}}'
// Prints {"status": N, "body": "..."} or, when TLS or the socket fails, {"error": CODE, "message"}.
"use strict";
const fs = require("fs");
const https = require("https");

const options = JSON.parse(process.argv[2]);
const url = new URL(options.url);
const request = {
  hostname: url.hostname,
  port: url.port,
  path: url.pathname + url.search,
  method: "GET",
  headers: options.headers || {},
  ca: fs.readFileSync(options.ca),
  agent: false,
};
if (options.cert) request.cert = fs.readFileSync(options.cert);
if (options.key) request.key = fs.readFileSync(options.key);
if (options.passphrase) request.passphrase = options.passphrase;

const req = https.request(request, (res) => {
  let body = "";
  res.setEncoding("utf8");
  res.on("data", (chunk) => { body += chunk; });
  res.on("end", () => {
    process.stdout.write(JSON.stringify({ status: res.statusCode, body }));
  });
});
req.setTimeout(10000, () => req.destroy(new Error("timeout")));
req.on("error", (error) => {
  process.stdout.write(JSON.stringify({ error: error.code || "ERROR", message: String(error) }));
});
req.end();
