// Sends events with @fluent-org/logger (a third-party Forward client) and reports what was acknowledged.
// Usage: node fluent_client.js '<json options>'
//   {port, tag, mode: Message|Forward|PackedForward|CompressedPackedForward, ack: bool, sharedKey, clientHostname,
//    username, password, events: [{time: null | int | [sec, nsec], record: {...}}], timeoutMs}
// Prints one JSON line: {"sent": n, "acked": n, "errors": [...]}.
"use strict";
const { FluentClient, EventTime } = require("@fluent-org/logger");

async function main() {
  const opts = JSON.parse(process.argv[2]);
  const config = {
    eventMode: opts.mode || "PackedForward",
    socket: { host: "127.0.0.1", port: opts.port, timeout: opts.timeoutMs || 10000 },
    flushInterval: 5,
    disconnect: { waitForPending: true, waitForPendingDelay: opts.timeoutMs || 10000, socketDisconnectDelay: 100 },
    eventRetry: { attempts: 1 },
  };
  if (opts.ack) config.ack = { ackTimeout: opts.timeoutMs || 10000 };
  if (opts.sharedKey !== undefined) {
    config.security = {
      clientHostname: opts.clientHostname || "node-client",
      sharedKey: opts.sharedKey,
      username: opts.username || "",
      password: opts.password || "",
    };
  }
  const client = new FluentClient(opts.tag, config);
  const errors = [];
  let acked = 0;
  let reported = false;
  const report = () => {
    if (!reported) process.stdout.write(JSON.stringify({ sent: opts.events.length, acked, errors }) + "\n");
    reported = true;
  };
  // a refused handshake can leave the sends pending with nothing left to run: report what happened anyway
  process.on("beforeExit", () => { if (!reported) { errors.push("pending sends never settled"); report(); } });
  const sends = opts.events.map((e) => {
    let time;
    if (Array.isArray(e.time)) time = new EventTime(e.time[0], e.time[1]);
    else if (typeof e.time === "number") time = e.time;
    const p = time === undefined ? client.emit(e.record) : client.emit(e.record, time);
    return p.then(() => { acked += 1; }, (err) => { errors.push(String(err && err.name) + ": " + String(err && err.message)); });
  });
  await Promise.all(sends);
  try { await client.disconnect(); } catch (err) { errors.push("disconnect: " + err.message); }
  report();
}

main().catch((err) => { process.stdout.write(JSON.stringify({ fatal: String(err) }) + "\n"); process.exit(1); });
