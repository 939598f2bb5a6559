import { APIRequestContext, Page, expect } from "@playwright/test";

/** The scripted model server the app under test talks to (scripts/test.sh starts it). */
export const FAKE_MODEL_URL = process.env.FAKE_MODEL_URL ?? "http://127.0.0.1:18090";

export type ReplySpec =
  | { kind: "text"; text: string; delay_ms?: number }
  | { kind: "tool_calls"; calls: { name: string; arguments?: string }[]; text?: string }
  | { kind: "status"; status: number; body?: string }
  | { kind: "disconnect"; text?: string }
  | { kind: "hang"; text?: string }
  | { kind: "garbage"; text?: string; garbage: string };

/** Queues the model's next replies (one per model call). */
export async function script(request: APIRequestContext, ...replies: ReplySpec[]) {
  const res = await request.post(`${FAKE_MODEL_URL}/control/replies`, { data: replies });
  expect(res.status()).toBe(200);
}

export async function resetModel(request: APIRequestContext) {
  const res = await request.post(`${FAKE_MODEL_URL}/control/reset`);
  expect(res.status()).toBe(204);
}

export async function modelStats(request: APIRequestContext) {
  const res = await request.get(`${FAKE_MODEL_URL}/control/stats`);
  return (await res.json()) as { open_streams: number; requests: number; pending: number };
}

export async function lastModelRequest(request: APIRequestContext) {
  const res = await request.get(`${FAKE_MODEL_URL}/control/last-request`);
  return await res.json();
}

/** Collects page errors and failed requests; a test ends by checking there were none. */
export function watchErrors(page: Page) {
  const errors: string[] = [];
  page.on("console", (msg) => {
    if (msg.type() === "error" && !msg.text().startsWith("Failed to load resource")) errors.push(msg.text());
  });
  page.on("pageerror", (err) => errors.push(err.message));
  page.on("response", (res) => {
    if (res.status() >= 400) errors.push(`${res.status()} ${res.url()}`);
  });
  return errors;
}

/** Opens the chat and waits until the WASM bundle has taken over the page. */
export async function openChat(page: Page) {
  const response = await page.goto("/");
  expect(response?.status()).toBe(200);
  // The page runs under its Content-Security-Policy (a violation is a console error: see watchErrors).
  expect(response?.headers()["content-security-policy"]).toContain("script-src 'self' 'wasm-unsafe-eval' 'sha256-");
  await page.locator("body[data-hydrated]").waitFor();
}

export async function send(page: Page, text: string) {
  const input = page.getByRole("textbox", { name: "Message" });
  await input.fill(text);
  await input.press("Enter");
}

/** The last answer on the page. */
export function lastAnswer(page: Page) {
  return page.locator(".assistant-message").last();
}

export async function waitForAnswer(page: Page, status = "done") {
  await expect(lastAnswer(page)).toHaveAttribute("data-status", status);
}
