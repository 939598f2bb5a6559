import { expect, test } from "@playwright/test";
import { lastAnswer, lastModelRequest, openChat, resetModel, script, send, waitForAnswer, watchErrors } from "./helpers";

// The app under test runs AGENT_EXAMPLE=handoffs (scripts/test.sh): the agent can hand over to Billing.
test.beforeEach(async ({ request }) => {
  await resetModel(request);
});

test("after a hand-off the page names the agent that answers", async ({ page, request }) => {
  const errors = watchErrors(page);
  await openChat(page);
  await script(
    request,
    { kind: "tool_calls", calls: [{ name: "transfer_to_billing", arguments: "{}" }] },
    { kind: "text", text: "Your refund is on its way." },
  );
  await send(page, "Where is my refund?");
  await waitForAnswer(page);
  const answer = lastAnswer(page);
  await expect(answer.locator(".markdown").last()).toHaveText("Your refund is on its way.");
  await expect(answer.locator(".agent-name")).toHaveText(["Billing"]);
  // Billing answered with its own instructions.
  const sent = await lastModelRequest(request);
  expect(sent.messages[0].content).toContain("You handle invoices");

  // An answer without a hand-off names nobody; the saved chat keeps the names.
  await script(request, { kind: "text", text: "Anything else?" });
  await send(page, "Thanks");
  await waitForAnswer(page);
  await expect(lastAnswer(page).locator(".agent-name")).toHaveCount(0);
  await page.reload();
  await page.locator("body[data-hydrated]").waitFor();
  await expect(page.locator(".agent-name")).toHaveText(["Billing"]);
  expect(errors).toEqual([]);
});
