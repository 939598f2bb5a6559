// First contact over a real link: Chromium (Debian's) with its network throttled through the
// DevTools protocol to 9 Mbit/s down, 60 ms round trip. Prints, for a first visit (empty cache) and
// a reload, the time from navigation to a hydrated page (`body[data-hydrated]`) and to the first
// paint of the server-rendered page, and the bytes that crossed the network. Fails if a reload
// downloads any of the bundle again (it is cached for good under its hashed path).
//
//   BASE_URL=http://127.0.0.1:8000 node end2end/bench/first-load.mjs [runs]
import { chromium } from "@playwright/test";

const base = process.env.BASE_URL ?? "http://127.0.0.1:8000";
const runs = Number(process.argv[2] ?? 3);
const link = { offline: false, latency: 60, downloadThroughput: (9e6 / 8), uploadThroughput: (9e6 / 8) };

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium" });

async function visit(page, cdp, load) {
  const transfers = new Map();
  const onResponse = (e) => transfers.set(e.requestId, { url: e.response.url, bytes: 0, cached: e.response.fromDiskCache || e.response.fromPrefetchCache });
  const onFinished = (e) => { const t = transfers.get(e.requestId); if (t) t.bytes = e.encodedDataLength; };
  cdp.on("Network.responseReceived", onResponse);
  cdp.on("Network.loadingFinished", onFinished);
  await load();
  await page.locator("body[data-hydrated]").waitFor({ timeout: 30_000 });
  const timing = await page.evaluate(() => ({
    hydrated: performance.now(),
    paint: performance.getEntriesByName("first-contentful-paint")[0]?.startTime ?? NaN,
  }));
  cdp.off("Network.responseReceived", onResponse);
  cdp.off("Network.loadingFinished", onFinished);
  const all = [...transfers.values()];
  const bytes = all.reduce((n, t) => n + t.bytes, 0);
  const bundle = all.filter((t) => t.url.includes("/pkg/")).reduce((n, t) => n + t.bytes, 0);
  return { ...timing, bytes, bundle };
}

const first = [], reload = [];
for (let i = 0; i < runs; i++) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send("Network.enable");
  await cdp.send("Network.emulateNetworkConditions", link);
  first.push(await visit(page, cdp, () => page.goto(base)));
  reload.push(await visit(page, cdp, () => page.reload()));
  await context.close();
}
await browser.close();

const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const line = (name, xs) =>
  `${name.padEnd(12)} hydrated ${median(xs.map((x) => x.hydrated)).toFixed(0).padStart(5)} ms` +
  `   first paint ${median(xs.map((x) => x.paint)).toFixed(0).padStart(5)} ms` +
  `   transferred ${(median(xs.map((x) => x.bytes)) / 1024).toFixed(1).padStart(7)} KB` +
  ` (bundle ${(median(xs.map((x) => x.bundle)) / 1024).toFixed(1)} KB)`;
console.log(`first load over 9 Mbit/s, 60 ms RTT (Chromium, median of ${runs}); goals: first visit hydrated within 700 ms, reload within 300 ms`);
console.log(line("first visit", first));
console.log(line("reload", reload));
if (reload.some((r) => r.bundle > 0)) {
  console.error("a reload downloaded the bundle again");
  process.exit(1);
}
