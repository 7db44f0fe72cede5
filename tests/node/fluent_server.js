// A Forward next hop: @fluent-org/logger's FluentServer (a third-party in_forward), writing every entry it
// receives as one JSON line {"tag", "time", "record"} to the file "out"; its standard output says {"port": N}.
// Usage: node fluent_server.js '<json options>'   {port: 0, out: "/path/entries.jsonl", sharedKey, serverHostname}
// FluentServer writes the ack before it emits a chunk's entries, and standard output to a pipe is written
// asynchronously: a kill -9 right after an ack would lose entries it acknowledged. A real in_forward acks only
// after the chunk is in its buffer; so here each chunk's entries are appended to the file named by "out"
// (synchronously) as soon as the library has parsed the message, before it writes the ack.
"use strict";
const fs = require("fs");
const { FluentServer } = require("@fluent-org/logger");
const protocol = require("@fluent-org/logger/build/src/protocol");

const opts = JSON.parse(process.argv[2] || "{}");

function line(tag, time, record) {
  const t = time && typeof time === "object" && "epoch" in time ? [time.epoch, time.nano] : time;
  return JSON.stringify({ tag, time: t, record }) + "\n";
}

const parseTransport = protocol.parseTransport;
protocol.parseTransport = (message) => {
  const decoded = parseTransport(message);
  fs.appendFileSync(opts.out, decoded.entries.map(([time, record]) => line(decoded.tag, time, record)).join(""));
  return { ...decoded, entries: [] };
};

async function main() {
  const config = { listenOptions: { port: opts.port || 0, host: "127.0.0.1" } };
  if (opts.sharedKey !== undefined) {
    config.security = { serverHostname: opts.serverHostname || "node-server", sharedKey: opts.sharedKey, authorize: false, userDict: {} };
  }
  const server = new FluentServer(config);
  await server.listen();
  process.stdout.write(JSON.stringify({ port: server.port }) + "\n");
  const stop = () => server.close().then(() => process.exit(0));
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((err) => { process.stderr.write(String(err) + "\n"); process.exit(1); });
