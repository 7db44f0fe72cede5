// A Forward next hop: @fluent-org/logger's FluentServer (a third-party in_forward), printing every entry it
// receives as one JSON line {"tag", "time", "record"} on standard output, after a first line {"port": N}.
// Usage: node fluent_server.js '<json options>'   {port: 0, sharedKey, serverHostname}
"use strict";
const { FluentServer } = require("@fluent-org/logger");

async function main() {
  const opts = JSON.parse(process.argv[2] || "{}");
  const config = { listenOptions: { port: opts.port || 0, host: "127.0.0.1" } };
  if (opts.sharedKey !== undefined) {
    config.security = { serverHostname: opts.serverHostname || "node-server", sharedKey: opts.sharedKey, authorize: false, userDict: {} };
  }
  const server = new FluentServer(config);
  server.on("entry", (tag, time, record) => {
    const t = time && typeof time === "object" && "epoch" in time ? [time.epoch, time.nano] : time;
    process.stdout.write(JSON.stringify({ tag, time: t, record }) + "\n");
  });
  await server.listen();
  process.stdout.write(JSON.stringify({ port: server.port }) + "\n");
  const stop = () => server.close().then(() => process.exit(0));
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((err) => { process.stderr.write(String(err) + "\n"); process.exit(1); });
