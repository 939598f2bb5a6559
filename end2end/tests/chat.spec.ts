import { expect, test } from "@playwright/test";
import {
  lastAnswer,
  lastModelRequest,
  modelStats,
  openChat,
  resetModel,
  script,
  send,
  waitForAnswer,
  watchErrors,
} from "./helpers";

// The scripted model is shared: tests that queue replies must not run at the same time.
test.describe.configure({ mode: "serial" });

test.beforeEach(async ({ request }) => {
  await resetModel(request);
});

test("the empty chat greets, names the user and the model, and a suggestion starts a chat", async ({
  browser,
  request,
}) => {
  const context = await browser.newContext({
    extraHTTPHeaders: { "X-Forwarded-Email": "ana@example.com", "X-Forwarded-Preferred-Username": "ana" },
  });
  const page = await context.newPage();
  const errors = watchErrors(page);
  await openChat(page);
  await expect(page.locator(".greeting")).toHaveText(process.env.CHAT_GREETING ?? "What would you like to know?");
  await expect(page.locator(".user-name")).toHaveText("ana");
  await expect(page.locator(".model-badge")).toContainText("openai");
  // Chat history is on: no "Ephemeral" badge, a chat list instead.
  await expect(page.locator(".ephemeral")).toHaveCount(0);
  await expect(page.getByRole("button", { name: "+ New chat" })).toBeVisible();

  await script(request, { kind: "text", text: "I can tell the time." });
  await page.getByRole("button", { name: "How can you help me?" }).click();
  await expect(page.locator(".user-message .bubble")).toHaveText("How can you help me?");
  await waitForAnswer(page);
  await expect(lastAnswer(page).locator(".markdown")).toHaveText("I can tell the time.");
  expect(errors).toEqual([]);
  await context.close();
});

test("an answer streams token by token and renders as markdown", async ({ page, request }) => {
  const errors = watchErrors(page);
  await openChat(page);
  const words = "**Streaming** works: one two three four five six seven eight nine ten.";
  await script(request, { kind: "text", text: words, delay_ms: 80 });
  await send(page, "Stream something");
  await expect(page.getByRole("textbox", { name: "Message" })).toHaveValue("");

  // Sample the answer while it grows: several distinct partial states must be seen.
  const states = new Set<string>();
  const markdown = lastAnswer(page).locator(".markdown");
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const status = await lastAnswer(page).getAttribute("data-status");
    if ((await markdown.count()) > 0) states.add(await markdown.innerText());
    if (status === "done") break;
    await page.waitForTimeout(25);
  }
  expect(states.size).toBeGreaterThan(4);
  await waitForAnswer(page);
  await expect(markdown.locator("strong")).toHaveText("Streaming");
  await expect(markdown).toContainText("nine ten.");
  expect(errors).toEqual([]);
});

test("a tool call shows as a card with its arguments and output", async ({ page, request }) => {
  await openChat(page);
  await script(
    request,
    { kind: "tool_calls", calls: [{ name: "get_current_time", arguments: "{}" }] },
    { kind: "text", text: "It is time for tea." },
  );
  await send(page, "What time is it?");
  const card = lastAnswer(page).locator(".tool-card");
  await expect(card).toHaveAttribute("data-state", "done");
  await expect(card.locator(".tool-name")).toHaveText("get_current_time");
  await expect(card.locator(".tool-output")).toBeHidden();
  await card.locator("summary").click();
  await expect(card.locator(".tool-arguments")).toHaveText("{}");
  await expect(card.locator(".tool-output")).toHaveText(/\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/);
  await waitForAnswer(page);
  await expect(lastAnswer(page).locator(".markdown")).toHaveText("It is time for tea.");
});

test("stop ends the answer in the page and the model call on the server", async ({ page, request }) => {
  await openChat(page);
  await script(request, { kind: "hang", text: "I will never finish this" });
  await send(page, "Talk forever");
  await expect(lastAnswer(page).locator(".markdown")).toHaveText("I will never finish this");
  await expect.poll(async () => (await modelStats(request)).open_streams).toBe(1);

  await page.getByRole("button", { name: "Stop" }).click();
  await waitForAnswer(page, "stopped");
  await expect(lastAnswer(page).locator(".stopped-note")).toBeVisible();
  await expect(lastAnswer(page).locator(".markdown")).toHaveText("I will never finish this");
  // The server dropped the agent run, and with it the connection to the model.
  await expect.poll(async () => (await modelStats(request)).open_streams).toBe(0);
  await expect(page.getByRole("button", { name: "Send" })).toBeVisible();

  // The conversation goes on, and the stopped text is part of its history.
  await script(request, { kind: "text", text: "Fine, shorter then." });
  await send(page, "Be brief");
  await waitForAnswer(page);
  const sent = await lastModelRequest(request);
  const contents = sent.messages.map((m: { content: string }) => m.content);
  expect(contents).toContain("I will never finish this");
});

test("an error in the middle of a stream is shown with its text, and the partial answer stays", async ({
  page,
  request,
}) => {
  await openChat(page);
  await script(request, { kind: "disconnect", text: "Here is the beginning" });
  await send(page, "Fail please");
  await waitForAnswer(page, "failed");
  const answer = lastAnswer(page);
  await expect(answer.locator(".markdown")).toHaveText("Here is the beginning");
  await expect(answer.locator(".error-box")).toBeVisible();
  await expect(answer.locator(".error-text")).not.toBeEmpty();
  // Regenerate recovers.
  await script(request, { kind: "text", text: "Recovered." });
  await answer.getByRole("button", { name: "Regenerate" }).click();
  await waitForAnswer(page);
  await expect(lastAnswer(page).locator(".markdown")).toHaveText("Recovered.");
  await expect(lastAnswer(page).locator(".error-box")).toHaveCount(0);
});

test("markdown and HTML injection in an answer never runs", async ({ page, request }) => {
  const errors = watchErrors(page);
  await openChat(page);
  const payload = [
    "Look: <img src=x onerror=\"window.__xss='img'\">",
    "<script>window.__xss='script'</script>",
    "[click me](javascript:window.__xss='link')",
    "<a href=\"javascript:window.__xss='a'\">raw link</a>",
    "<iframe src=\"javascript:window.__xss='iframe'\"></iframe>",
    "![pic](javascript:window.__xss='image')",
    // A wider corpus: case and whitespace tricks, other schemes, entities, autolinks, references,
    // event handlers on other tags, and mutation-XSS shapes.
    "[case](JaVaScRiPt:window.__xss='case')",
    "[tab](java\tscript:window.__xss='tab')",
    "[data](data:text/html,<script>window.__xss='data'</script>)",
    "[vb](vbscript:msgbox(1))",
    "<a href=\"&#106;avascript:window.__xss='entity'\">entity</a>",
    "<javascript:window.__xss='autolink'>",
    "[ref][r]\n\n[r]: javascript:window.__xss='ref'",
    "<svg onload=\"window.__xss='svg'\"></svg>",
    "<details open ontoggle=\"window.__xss='details'\">x</details>",
    "<math><mtext><table><mglyph><style><img src=x onerror=\"window.__xss='mxss'\">",
    "<body onload=\"window.__xss='body'\">",
    "`<img src=x onerror=window.__xss='code'>` and ```\n<script>window.__xss='fence'</script>\n```",
  ].join("\n\n");
  await script(request, { kind: "text", text: payload });
  await send(page, "Inject");
  await waitForAnswer(page);
  const markdown = lastAnswer(page).locator(".markdown");
  await expect(markdown).toContainText("<img src=x onerror=");
  await expect(markdown.locator("img[onerror], script, iframe, svg, math, details, a[href^='javascript']")).toHaveCount(0);
  // No element of the answer has an event handler, and every link and image target is harmless.
  const unsafe = await markdown.evaluate((root) => {
    const found: string[] = [];
    for (const el of Array.from(root.querySelectorAll("*"))) {
      for (const attr of Array.from(el.attributes)) {
        if (attr.name.startsWith("on")) found.push(`${el.tagName} ${attr.name}`);
        if ((attr.name === "href" || attr.name === "src") && !/^(https?:|mailto:|#|\/|[^:]*$)/i.test(attr.value.trim()))
          found.push(`${el.tagName} ${attr.name}=${attr.value}`);
      }
    }
    return found;
  });
  expect(unsafe).toEqual([]);
  for (const text of ["case", "tab", "data", "vb", "ref"]) {
    const link = markdown.getByText(text, { exact: true });
    if ((await link.count()) > 0) await link.first().click({ noWaitAfter: true }).catch(() => {});
  }
  await markdown.getByText("click me").click();
  await page.waitForTimeout(200);
  expect(await page.evaluate(() => (window as unknown as { __xss?: string }).__xss)).toBeUndefined();
  expect(errors).toEqual([]);
});

test("regenerate replaces the last answer; editing a question reruns the chat from there", async ({
  page,
  request,
}) => {
  await openChat(page);
  await script(request, { kind: "text", text: "First answer." });
  await send(page, "Question one");
  await waitForAnswer(page);
  await script(request, { kind: "text", text: "Second question's answer." });
  await send(page, "Question two");
  await waitForAnswer(page);
  // The second request carried the first exchange.
  const second = await lastModelRequest(request);
  expect(second.messages.map((m: { role: string }) => m.role)).toEqual(["system", "user", "assistant", "user"]);

  await script(request, { kind: "text", text: "A regenerated answer." });
  await lastAnswer(page).getByRole("button", { name: "Regenerate" }).click();
  await waitForAnswer(page);
  await expect(page.locator(".assistant-message")).toHaveCount(2);
  await expect(lastAnswer(page).locator(".markdown")).toHaveText("A regenerated answer.");

  // Edit the first question: the exchanges after it go, and the model sees only the edited question.
  await script(request, { kind: "text", text: "Answer to the edited question." });
  const firstUser = page.locator(".user-message").first();
  await firstUser.hover();
  await firstUser.getByRole("button", { name: "Edit message" }).click();
  await firstUser.getByRole("textbox", { name: "Edit your message" }).fill("Question one, edited");
  await firstUser.getByRole("button", { name: "Save & send" }).click();
  await waitForAnswer(page);
  await expect(page.locator(".user-message .bubble")).toHaveText(["Question one, edited"]);
  await expect(page.locator(".assistant-message")).toHaveCount(1);
  await expect(lastAnswer(page).locator(".markdown")).toHaveText("Answer to the edited question.");
  const edited = await lastModelRequest(request);
  expect(edited.messages.map((m: { content: string }) => m.content).slice(1)).toEqual(["Question one, edited"]);
});

test("Enter sends, Shift+Enter makes a new line; code blocks are highlighted and copy", async ({
  browser,
  request,
}) => {
  const context = await browser.newContext({ permissions: ["clipboard-read", "clipboard-write"] });
  const page = await context.newPage();
  await openChat(page);
  await script(request, { kind: "text", text: "Here:\n\n```rust\nfn main() { println!(\"hi\"); }\n```\n" });
  const input = page.getByRole("textbox", { name: "Message" });
  await input.fill("line one");
  await input.press("Shift+Enter");
  await input.type("line two");
  await expect(page.locator(".user-message")).toHaveCount(0);
  await input.press("Enter");
  await expect(page.locator(".user-message .bubble")).toHaveText("line one\nline two");
  await waitForAnswer(page);
  const block = lastAnswer(page).locator(".code-block");
  await expect(block.locator(".code-lang")).toHaveText("rust");
  await expect(block.locator(".hl-keyword").first()).toHaveText("fn");
  await block.getByRole("button", { name: "Copy code" }).click();
  await expect(block.getByRole("button", { name: "Copy code" })).toHaveText("Copied");
  expect(await page.evaluate(() => navigator.clipboard.readText())).toBe('fn main() { println!("hi"); }\n');
  await lastAnswer(page).getByRole("button", { name: "Copy message" }).click();
  expect(await page.evaluate(() => navigator.clipboard.readText())).toContain("```rust");
  await context.close();
});

test("auto-scroll follows the answer until the user scrolls up", async ({ page, request }) => {
  await page.setViewportSize({ width: 1000, height: 500 });
  await openChat(page);
  const long = Array.from({ length: 120 }, (_, i) => (i % 12 === 11 ? `word${i}\n\n` : `word${i}`)).join(" ");
  await script(request, { kind: "text", text: long, delay_ms: 25 });
  await send(page, "Write a lot");
  const transcript = page.locator(".transcript");
  const gap = () =>
    transcript.evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight);
  await expect.poll(async () => transcript.evaluate((el) => el.scrollHeight > el.clientHeight + 100)).toBe(true);
  expect(await gap()).toBeLessThan(60);
  await transcript.evaluate((el) => el.scrollTo({ top: 0 }));
  await page.waitForTimeout(400);
  expect(await transcript.evaluate((el) => el.scrollTop)).toBeLessThan(30);
  await waitForAnswer(page);
});

test("the theme can be switched and the choice survives a reload", async ({ page }) => {
  await page.emulateMedia({ colorScheme: "light" });
  await openChat(page);
  const light = await page.locator("body").evaluate((b) => getComputedStyle(b).backgroundColor);
  await page.getByRole("button", { name: "Switch to dark theme" }).click();
  await expect(page.locator("html")).toHaveAttribute("data-theme", "dark");
  const dark = await page.locator("body").evaluate((b) => getComputedStyle(b).backgroundColor);
  expect(dark).not.toBe(light);
  await page.reload();
  await page.locator("body[data-hydrated]").waitFor();
  await expect(page.locator("html")).toHaveAttribute("data-theme", "dark");
  expect(await page.locator("body").evaluate((b) => getComputedStyle(b).backgroundColor)).toBe(dark);
  await page.getByRole("button", { name: "Switch to light theme" }).click();
  await expect(page.locator("html")).toHaveAttribute("data-theme", "light");
  // With no choice made, the system's preference rules.
  await page.evaluate(() => localStorage.clear());
  await page.emulateMedia({ colorScheme: "dark" });
  await page.reload();
  await page.locator("body[data-hydrated]").waitFor();
  await expect(page.locator("html")).not.toHaveAttribute("data-theme", /./);
  expect(await page.locator("body").evaluate((b) => getComputedStyle(b).backgroundColor)).toBe(dark);
  await expect(page.getByRole("button", { name: "Switch to light theme" })).toBeVisible();
});

test("the page works after a reload and on a phone-sized screen", async ({ page, request }) => {
  await page.setViewportSize({ width: 390, height: 844 });
  await openChat(page);
  await script(request, { kind: "text", text: "Before reload." });
  await send(page, "One");
  await waitForAnswer(page);
  await expect(page).toHaveURL(/\?chat=/);
  await page.reload();
  await page.locator("body[data-hydrated]").waitFor();
  // The chat comes back from the server, and goes on.
  await expect(page.locator(".user-message .bubble")).toHaveText(["One"]);
  await expect(lastAnswer(page).locator(".markdown")).toHaveText("Before reload.");
  await script(request, { kind: "text", text: "After reload." });
  await send(page, "Two");
  await waitForAnswer(page);
  await expect(lastAnswer(page).locator(".markdown")).toHaveText("After reload.");
  // Nothing wider than the screen, the composer on it, the chat list behind the menu button.
  expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
  const box = await page.locator(".composer").boundingBox();
  expect(box && box.y + box.height).toBeLessThanOrEqual(844);
  await expect(page.locator(".sidebar")).not.toBeInViewport();
  await page.getByRole("button", { name: "Chats" }).click();
  await expect(page.locator(".sidebar")).toBeInViewport();
  await page.getByRole("button", { name: "+ New chat" }).click();
  await expect(page.locator(".sidebar")).not.toBeInViewport();
  await expect(page.locator(".greeting")).toBeVisible();
});
