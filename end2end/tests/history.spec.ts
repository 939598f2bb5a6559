import { expect, test } from "@playwright/test";
import { lastAnswer, openChat, resetModel, script, send, waitForAnswer } from "./helpers";

test.describe.configure({ mode: "serial" });

test.beforeEach(async ({ request }) => {
  await resetModel(request);
});

test("chats are listed, reopened with their tool cards and votes, renamed and deleted", async ({ page, request }) => {
  await openChat(page);
  // A first chat with a tool call, voted down then up.
  await script(
    request,
    { kind: "tool_calls", calls: [{ name: "get_current_time", arguments: "{}" }] },
    { kind: "text", text: "It is tea time." },
  );
  const question = `What time is it? ${Date.now()}`;
  await send(page, question);
  await waitForAnswer(page);
  await lastAnswer(page).getByRole("button", { name: "Bad answer" }).click();
  await lastAnswer(page).getByRole("button", { name: "Good answer" }).click();
  await expect(lastAnswer(page).getByRole("button", { name: "Good answer" })).toHaveAttribute("aria-pressed", "true");
  const firstUrl = page.url();

  // The sidebar lists it under its first message.
  const item = page.locator(".chat-item", { hasText: question });
  await expect(item).toHaveClass(/active/);

  // A second chat.
  await page.getByRole("button", { name: "+ New chat" }).click();
  await expect(page.locator(".greeting")).toBeVisible();
  await script(request, { kind: "text", text: "Second chat's answer." });
  const second = `Another chat ${Date.now()}`;
  await send(page, second);
  await waitForAnswer(page);
  await expect(page.locator(".chat-item").first()).toContainText(second);
  expect(page.url()).not.toBe(firstUrl);

  // Reopen the first: the question, the tool card with its output, the answer and the vote are back.
  await item.locator(".chat-link").click();
  await expect(page.locator(".user-message .bubble")).toHaveText([question]);
  const card = lastAnswer(page).locator(".tool-card");
  await expect(card).toHaveAttribute("data-state", "done");
  await card.locator("summary").click();
  await expect(card.locator(".tool-output")).toHaveText(/\d{4}-\d{2}-\d{2}T/);
  await expect(lastAnswer(page).locator(".markdown")).toHaveText("It is tea time.");
  await expect(lastAnswer(page).getByRole("button", { name: "Good answer" })).toHaveAttribute("aria-pressed", "true");

  // After a reload too.
  await page.reload();
  await page.locator("body[data-hydrated]").waitFor();
  await expect(lastAnswer(page).locator(".markdown")).toHaveText("It is tea time.");
  await expect(lastAnswer(page).getByRole("button", { name: "Good answer" })).toHaveAttribute("aria-pressed", "true");

  // Rename, then delete.
  await item.hover();
  await item.getByRole("button", { name: "Rename chat" }).click();
  const titleBox = page.getByRole("textbox", { name: "Chat title" });
  await titleBox.fill("Tea time");
  await titleBox.press("Enter");
  await expect(page.locator(".chat-item", { hasText: "Tea time" })).toBeVisible();
  page.once("dialog", (dialog) => dialog.accept());
  const renamed = page.locator(".chat-item", { hasText: "Tea time" });
  await renamed.hover();
  await renamed.getByRole("button", { name: "Delete chat" }).click();
  await expect(page.locator(".chat-item", { hasText: "Tea time" })).toHaveCount(0);
  // The open chat was the deleted one: the page starts afresh.
  await expect(page.locator(".greeting")).toBeVisible();
});

test("another user sees none of it", async ({ browser, request }) => {
  const ana = await browser.newContext({ extraHTTPHeaders: { "X-Forwarded-Email": "ana@example.com" } });
  const bob = await browser.newContext({ extraHTTPHeaders: { "X-Forwarded-Email": "bob@example.com" } });
  const anaPage = await ana.newPage();
  await openChat(anaPage);
  await script(request, { kind: "text", text: "Ana's secret answer." });
  await send(anaPage, "Ana's secret question");
  await waitForAnswer(anaPage);
  const url = anaPage.url();

  const bobPage = await bob.newPage();
  await bobPage.goto(url);
  await bobPage.locator("body[data-hydrated]").waitFor();
  await expect(bobPage.locator(".notice")).toContainText("could not be opened");
  await expect(bobPage.locator(".user-message")).toHaveCount(0);
  await expect(bobPage.locator(".chat-item", { hasText: "Ana's secret" })).toHaveCount(0);

  // Made public, Bob can read it through the link (it stays out of his list).
  await anaPage.getByRole("button", { name: "Private" }).click();
  await expect(anaPage.getByRole("button", { name: "Public" })).toBeVisible();
  await bobPage.goto(url);
  await bobPage.locator("body[data-hydrated]").waitFor();
  await expect(bobPage.locator(".user-message .bubble")).toHaveText(["Ana's secret question"]);
  await expect(bobPage.locator(".chat-item", { hasText: "Ana's secret" })).toHaveCount(0);
  await expect(bobPage.getByRole("textbox", { name: "Message" })).toBeDisabled();
  await ana.close();
  await bob.close();
});

test("an answer goes on through a page reload, and the page follows it to the end", async ({ page, request }) => {
  await openChat(page);
  const words = "one two three four five six seven eight nine ten eleven twelve";
  await script(request, { kind: "text", text: words, delay_ms: 150 });
  await send(page, `Count slowly ${Date.now()}`);
  await expect(lastAnswer(page).locator(".markdown")).toContainText("two");
  // The saved answer names the response that writes it (what a reloaded page follows).
  const chatId = new URL(page.url()).searchParams.get("chat");
  await expect
    .poll(async () => (await (await request.get(`/api/chat/${chatId}`)).json()).messages?.[1]?.response_id ?? null)
    .not.toBeNull();
  // Reload mid-answer: the page reopens the chat and follows the answer, which went on meanwhile.
  await page.reload();
  await page.locator("body[data-hydrated]").waitFor();
  await expect(lastAnswer(page)).toHaveAttribute("data-status", "streaming");
  await waitForAnswer(page);
  await expect(lastAnswer(page).locator(".markdown")).toHaveText(words);
  // It was saved whole.
  await page.reload();
  await page.locator("body[data-hydrated]").waitFor();
  await expect(lastAnswer(page)).toHaveAttribute("data-status", "done");
  await expect(lastAnswer(page).locator(".markdown")).toHaveText(words);
});
