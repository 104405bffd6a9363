// A small receiver of Puente's outgoing webhooks in Node, with nothing but Node itself:
// it verifies each delivery's signature the Standard Webhooks way, prints the event, and
// answers 401 to anything not signed with the endpoint's secret.
//
//     PUENTE_WEBHOOK_SECRET=whsec_... node webhook_receiver.js --port 8787
//
// Then add an endpoint in Puente (Settings > Webhooks) pointing at http://<this host>:8787/
// and paste its secret here. See docs/webhooks.md.
"use strict";

const crypto = require("node:crypto");
const http = require("node:http");

const TOLERANCE_SECONDS = 5 * 60;
const MAX_BODY = 1024 * 1024;

// The delivery's event if `body` (the request's raw bytes, a Buffer) was signed with
// `secret` in the last five minutes; throws otherwise. `headers` as Node gives them
// (lower-case names).
function verify(secret, body, headers) {
  const id = headers["webhook-id"];
  const timestamp = headers["webhook-timestamp"];
  const signatures = headers["webhook-signature"];
  if (!id || !timestamp || !signatures) throw new Error("missing webhook headers");
  const now = Math.floor(Date.now() / 1000);
  if (!/^\d+$/.test(timestamp) || Math.abs(now - Number(timestamp)) > TOLERANCE_SECONDS) {
    throw new Error("timestamp too old or too new");
  }
  // The spec's three lines: the key is the secret's base64 after "whsec_", the signed
  // content is "<id>.<timestamp>.<body>", the signature is its HMAC-SHA256 in base64.
  const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
  const expected = crypto.createHmac("sha256", key).update(`${id}.${timestamp}.`).update(body).digest();
  // The header may carry several signatures ("v1,<sig> v1,<sig>") while a secret rotates.
  for (const versioned of signatures.split(" ")) {
    const [version, signature] = versioned.split(",");
    if (version !== "v1" || !signature) continue;
    const given = Buffer.from(signature, "base64");
    if (given.length === expected.length && crypto.timingSafeEqual(given, expected)) {
      return JSON.parse(body.toString("utf8"));
    }
  }
  throw new Error("no matching signature");
}

function makeServer(secret, onEvent) {
  const handle = onEvent || printEvent;
  const seen = new Set();
  return http.createServer((req, res) => {
    const chunks = [];
    let size = 0;
    req.on("data", (chunk) => {
      size += chunk.length;
      if (size <= MAX_BODY) chunks.push(chunk);
    });
    req.on("end", () => {
      if (req.method !== "POST") return answer(res, 405, "POST only");
      if (size > MAX_BODY) return answer(res, 413, "too large");
      let event;
      try {
        event = verify(secret, Buffer.concat(chunks), req.headers);
      } catch (err) {
        return answer(res, 401, `bad signature: ${err.message}`);
      }
      // Retries carry the same webhook-id: act on each event once.
      const id = req.headers["webhook-id"];
      if (!seen.has(id)) {
        seen.add(id);
        handle(event, req.headers);
      }
      answer(res, 200, "ok");
    });
  });
}

function answer(res, status, text) {
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8" });
  res.end(text);
}

function printEvent(event, headers) {
  console.log(`${headers["webhook-id"]} ${event.type}`);
  console.log(JSON.stringify(event, null, 2));
}

module.exports = { verify, makeServer };

if (require.main === module) {
  const args = process.argv.slice(2);
  const option = (name, fallback) => {
    const at = args.indexOf(name);
    return at >= 0 && args[at + 1] ? args[at + 1] : fallback;
  };
  const secret = process.env.PUENTE_WEBHOOK_SECRET || "";
  if (!secret.startsWith("whsec_")) {
    console.error("set PUENTE_WEBHOOK_SECRET to the endpoint's secret (whsec_...)");
    process.exit(1);
  }
  const host = option("--host", "127.0.0.1");
  const port = Number(option("--port", "8787"));
  makeServer(secret).listen(port, host, () => console.log(`listening on http://${host}:${port}/`));
}
