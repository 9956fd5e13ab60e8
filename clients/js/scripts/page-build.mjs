// The package as the talkgate page loads it (plain ES modules, no bundler): dist/*.js with the
// socket.io-client import pointed at talkgate's own /vendor/ copy, and the capture worklet as a file
// (the page's Content-Security-Policy refuses blob: modules). `npm run page` writes it into
// src/talkgate/static/js/client/ (committed, so `make run` needs no Node build); the tests check
// that the committed copy is what this script makes of the current sources.
import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";

const here = resolve(import.meta.dirname, "..");
const dist = join(here, "dist");
const target = resolve(process.argv[2] ?? join(here, "../../src/talkgate/static/js/client"));
const VENDOR = "/vendor/socket.io-client.esm.min.js";
const LIVEKIT = "/vendor/livekit-client.esm.mjs";
const HEADER = "// GENERATED from clients/js by `npm run page` (talkgate-client for the page): do not edit.\n";

await rm(target, { recursive: true, force: true });
await mkdir(target, { recursive: true });
for (const name of (await readdir(dist)).filter((n) => n.endsWith(".js")).sort()) {
  const text = await readFile(join(dist, name), "utf8");
  const pointed = text
    .replaceAll('from "socket.io-client"', `from "${VENDOR}"`)
    .replace('const name = "livekit-client";', `const name = "${LIVEKIT}";`);
  if (/from "(?![./])/.test(pointed)) throw new Error(`${name} imports a bare package the page cannot load`);
  await writeFile(join(target, name), HEADER + pointed);
}
const { PCM_WORKLET_SOURCE } = await import(join(dist, "browser.js"));
await writeFile(join(target, "pcm-worklet.js"), `${HEADER}${PCM_WORKLET_SOURCE}\n`);
console.log(`wrote ${target}`);
