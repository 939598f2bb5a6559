// The Leptos dev loop, timed as a developer lives it: with `cargo leptos watch` running, edit a
// component and wait until the browser shows the change (cargo-leptos rebuilds both sides, restarts
// the server and reloads the page through its socket). Prints the seconds from the save to the
// hydrated page with the new text, for each of RUNS edits, then puts the file back.
//
//   cargo leptos watch &   # then, once it serves:
//   BASE_URL=http://127.0.0.1:8000 node end2end/bench/dev-loop.mjs [runs]
import { readFileSync, writeFileSync } from "node:fs";
import { chromium } from "@playwright/test";

const base = process.env.BASE_URL ?? "http://127.0.0.1:8000";
const runs = Number(process.argv[2] ?? 2);
// A view's text: the composer's placeholder (app/src/ui/composer.rs).
const file = new URL("../../app/src/ui/composer.rs", import.meta.url);
const original = readFileSync(file, "utf8");
const marker = 'placeholder="Send a message…"';
if (!original.includes(marker)) throw new Error(`${marker} is not in ${file.pathname}`);

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium" });
const page = await browser.newPage();
await page.goto(base);
await page.locator("body[data-hydrated]").waitFor({ timeout: 60_000 });
const seconds = [];
try {
  for (let run = 1; run <= runs; run++) {
    const text = `Send a message (edit ${run})…`;
    const saved = performance.now();
    writeFileSync(file, original.replace(marker, `placeholder="${text}"`));
    // The watch reloads the page itself once the new server is up.
    await page.locator(`textarea[placeholder="${text}"]`).waitFor({ timeout: 600_000 });
    await page.locator("body[data-hydrated]").waitFor({ timeout: 60_000 });
    seconds.push((performance.now() - saved) / 1000);
    console.log(`edit ${run}: shown, hydrated, ${seconds.at(-1).toFixed(1)} s after the save`);
  }
} finally {
  writeFileSync(file, original);
  await browser.close();
}
console.log(`dev loop: ${seconds.map((s) => s.toFixed(1)).join(" s, ")} s from saving a component to seeing it`);
