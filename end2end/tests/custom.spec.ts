import { expect, test } from "@playwright/test";
import { lastAnswer, openChat, resetModel, script, send, waitForAnswer, watchErrors } from "./helpers";

test.beforeEach(async ({ request }) => {
  await resetModel(request);
});

test("the custom inputs panel sends custom_inputs and shows custom_outputs", async ({ page, request }) => {
  const errors = watchErrors(page);
  await openChat(page);
  // Closed, nothing extra is sent or shown.
  await expect(page.getByRole("textbox", { name: "Custom inputs (JSON)" })).toHaveCount(0);
  await page.getByRole("button", { name: "{ } Custom inputs" }).click();
  const box = page.getByRole("textbox", { name: "Custom inputs (JSON)" });

  // Not a JSON object: said so, and Send waits.
  await box.fill('["not", "an object"]');
  await expect(page.locator(".custom-error")).toContainText("must be a JSON object");
  await page.getByRole("textbox", { name: "Message" }).fill("hello");
  await expect(page.getByRole("button", { name: "Send" })).toBeDisabled();
  await box.fill('{"plan": "gold", "session_id": "ignored-in-chat"}');
  await expect(page.locator(".custom-error")).toHaveCount(0);

  await script(request, { kind: "text", text: "Hello, gold member." });
  const sent = page.waitForRequest((r) => r.url().endsWith("/api/chat") && r.method() === "POST");
  await send(page, "hello");
  expect((await sent).postDataJSON().custom_inputs).toEqual({ plan: "gold", session_id: "ignored-in-chat" });
  await waitForAnswer(page);
  // The response's custom_outputs: the session (the chat's id wins over custom_inputs.session_id).
  const outputs = lastAnswer(page).locator(".custom-outputs-json");
  await expect(outputs).toContainText('"session_id"');
  const chatId = new URL(page.url()).searchParams.get("chat") ?? page.url().split("/").pop();
  await expect(outputs).toContainText(chatId!);

  // Closing the panel hides the outputs and stops sending the inputs.
  await page.getByRole("button", { name: "{ } Custom inputs" }).click();
  await expect(lastAnswer(page).locator(".custom-outputs")).toHaveCount(0);
  await script(request, { kind: "text", text: "Plain." });
  const plain = page.waitForRequest((r) => r.url().endsWith("/api/chat") && r.method() === "POST");
  await send(page, "again");
  expect((await plain).postDataJSON().custom_inputs).toBeUndefined();
  await waitForAnswer(page);
  expect(errors).toEqual([]);
});
