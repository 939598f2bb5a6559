import { Page, expect, test } from "@playwright/test";
import { lastAnswer, openChat, resetModel, script, send, waitForAnswer } from "./helpers";

// The scripted model is shared: tests that queue replies must not run at the same time.
test.describe.configure({ mode: "serial" });

test.beforeEach(async ({ request }) => {
  await resetModel(request);
});

/** Opens a trace page; traces are stored in the background, so a fresh one may take a moment. */
async function openTrace(page: Page, href: string) {
  await expect.poll(async () => (await page.goto(href))?.status(), { timeout: 10_000 }).toBe(200);
}

test("an answer's trace shows its spans, inputs and outputs", async ({ page, request }) => {
  const question = `What time is it? ${Date.now()}`;
  await openChat(page);
  await script(
    request,
    { kind: "tool_calls", calls: [{ name: "get_current_time", arguments: "{}" }] },
    { kind: "text", text: "Tea time." },
  );
  await send(page, question);
  await waitForAnswer(page);
  const link = lastAnswer(page).getByRole("link", { name: "Trace" });
  const href = await link.getAttribute("href");
  expect(href).toMatch(/^\/traces\/tr-[0-9a-f]{32}$/);
  await openTrace(page, href!);

  await expect(page.locator(".trace-summary h2")).toContainText(question);
  await expect(page.locator(".trace-summary .badge")).toHaveText("OK");
  const spans = page.locator(".span");
  await expect(spans.locator(".span-type")).toHaveText(["UNKNOWN", "AGENT", "CHAT_MODEL", "TOOL", "CHAT_MODEL"]);
  await expect(spans.locator(".span-name")).toHaveText([
    "stream_handler",
    "Agent",
    /^chat /,
    "get_current_time",
    /^chat /,
  ]);
  // Closed until clicked; then the tool's output (a timestamp) and the model's answer are there.
  const tool = page.locator('.span[data-span-type="TOOL"]');
  await expect(tool.locator(".span-body")).toBeHidden();
  await tool.locator("summary").click();
  await expect(tool.locator(".span-io").filter({ hasText: "Outputs" }).locator("pre")).toHaveText(
    /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/,
  );
  const lastCall = page.locator('.span[data-span-type="CHAT_MODEL"]').last();
  await lastCall.locator("summary").click();
  await expect(lastCall.locator(".span-io").filter({ hasText: "Outputs" })).toContainText("Tea time.");
  await expect(lastCall.locator(".span-meta").filter({ hasText: "tokens" })).toBeVisible();

  // The list has it, newest first, and links back to it.
  await page.getByRole("link", { name: "Traces", exact: true }).click();
  const row = page.locator(".trace-row").first();
  await expect(row.locator(".preview").first()).toHaveText(question);
  await expect(row.locator(".badge")).toHaveText("OK");
  await row.getByRole("link", { name: question }).click();
  await expect(page).toHaveURL(new RegExp(`${href}$`));
});

test("a failed answer is traced as an error, with the model's message", async ({ page, request }) => {
  const question = `Break, please ${Date.now()}`;
  await openChat(page);
  await script(request, { kind: "status", status: 400, body: '{"error":{"message":"no such model here"}}' });
  await send(page, question);
  await expect(lastAnswer(page).locator(".error-box")).toBeVisible();

  await expect
    .poll(async () => {
      await page.goto("/traces");
      return await page.locator(".trace-row").first().locator(".preview").first().innerText();
    })
    .toBe(question);
  const row = page.locator(".trace-row").first();
  await expect(row.locator(".badge")).toHaveText("ERROR");
  await row.getByRole("link", { name: question }).click();
  await expect(page.locator(".trace-summary .badge")).toHaveText("ERROR");
  await expect(page.locator(".trace-summary .span-error")).toContainText("no such model here");
  await expect(page.locator(".span.failed")).toHaveCount(3); // the model call, the agent, the request
});

test("the chat page links to the traces", async ({ page }) => {
  await openChat(page);
  await page.getByRole("link", { name: "Traces" }).click();
  await expect(page).toHaveURL(/\/traces$/);
  await expect(page.locator("h1")).toHaveText("Traces");
  await page.getByRole("link", { name: "← Chat" }).click();
  await page.locator("body[data-hydrated]").waitFor();
});
