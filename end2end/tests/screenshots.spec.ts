// Not a test: regenerates the README's screenshots (docs/screenshots) from the real app.
//   SCREENSHOTS=1 scripts/test.sh   (or any run of the e2e suite with SCREENSHOTS=1)
import { Page, expect, test } from "@playwright/test";
import { lastAnswer, openChat, resetModel, script, send, waitForAnswer } from "./helpers";

test.describe.configure({ mode: "serial" });
test.skip(!process.env.SCREENSHOTS, "set SCREENSHOTS=1 to regenerate docs/screenshots");

const dir = "../docs/screenshots";
const answer = [
  "Here is the time in **three cities**:",
  "",
  "| City | Local time |",
  "|---|---|",
  "| Tokyo | 18:42 |",
  "| Paris | 10:42 |",
  "| New York | 04:42 |",
  "",
  "To get it yourself in Python:",
  "",
  "```python",
  "from datetime import datetime, timezone",
  "",
  "def now_utc() -> str:",
  "    # ISO-8601, like the get_current_time tool",
  "    return datetime.now(timezone.utc).isoformat()",
  "```",
].join("\n");

async function toolExchange(page: Page, request: Parameters<typeof script>[0]) {
  await script(
    request,
    { kind: "tool_calls", calls: [{ name: "get_current_time", arguments: "{}" }] },
    { kind: "text", text: answer },
  );
  await send(page, "What time is it in Tokyo, Paris and New York?");
  await waitForAnswer(page);
  await lastAnswer(page).locator(".tool-card summary").click();
}

test.beforeEach(async ({ request }) => {
  await resetModel(request);
});

test("empty", async ({ page }) => {
  await page.setViewportSize({ width: 1200, height: 760 });
  await page.emulateMedia({ colorScheme: "light" });
  await openChat(page);
  await page.screenshot({ path: `${dir}/empty.png` });
});

test("streaming", async ({ page, request }) => {
  await page.setViewportSize({ width: 1200, height: 760 });
  await page.emulateMedia({ colorScheme: "light" });
  await openChat(page);
  await script(request, { kind: "text", text: answer, delay_ms: 60 });
  await send(page, "Explain how to get the current time in Python");
  await expect(lastAnswer(page).locator(".markdown table")).toBeVisible();
  await page.screenshot({ path: `${dir}/streaming.png` });
  await waitForAnswer(page);
});

test("tool call", async ({ page, request }) => {
  await page.setViewportSize({ width: 1200, height: 900 });
  await page.emulateMedia({ colorScheme: "light" });
  await openChat(page);
  await toolExchange(page, request);
  await page.screenshot({ path: `${dir}/tool-call.png` });
});

test("error", async ({ page, request }) => {
  await page.setViewportSize({ width: 1200, height: 600 });
  await page.emulateMedia({ colorScheme: "light" });
  await openChat(page);
  await script(request, { kind: "disconnect", text: "Let me look that up for you. The first step is" });
  await send(page, "Summarise last quarter's sales");
  await waitForAnswer(page, "failed");
  await page.screenshot({ path: `${dir}/error.png` });
});

test("dark", async ({ page, request }) => {
  await page.setViewportSize({ width: 1200, height: 900 });
  await page.emulateMedia({ colorScheme: "dark" });
  await openChat(page);
  await toolExchange(page, request);
  await page.screenshot({ path: `${dir}/dark.png` });
});

test("mobile", async ({ browser, request }) => {
  const context = await browser.newContext({
    viewport: { width: 390, height: 844 },
    deviceScaleFactor: 2,
    isMobile: true,
    hasTouch: true,
    colorScheme: "light",
  });
  const page = await context.newPage();
  await openChat(page);
  await toolExchange(page, request);
  await page.screenshot({ path: `${dir}/mobile.png` });
  await context.close();
});

test("trace", async ({ page, request }) => {
  await page.setViewportSize({ width: 1200, height: 820 });
  await page.emulateMedia({ colorScheme: "light" });
  await openChat(page);
  await toolExchange(page, request);
  const href = await lastAnswer(page).getByRole("link", { name: "Trace" }).getAttribute("href");
  await expect.poll(async () => (await page.goto(href!))?.status()).toBe(200);
  await page.locator('.span[data-span-type="TOOL"] summary').click();
  await page.screenshot({ path: `${dir}/trace.png` });
});
