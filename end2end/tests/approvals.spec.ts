import { expect, test } from "@playwright/test";
import { lastAnswer, lastModelRequest, openChat, resetModel, script, send, waitForAnswer, watchErrors } from "./helpers";

// The app under test runs with the MCP test server's tools and AGENT_REQUIRE_APPROVAL=add
// (scripts/test.sh): the model's calls of `add` wait for the user.
test.describe.configure({ mode: "serial" });

test.beforeEach(async ({ request }) => {
  await resetModel(request);
});

/** The content of the last tool message the model was sent. */
async function lastToolResult(request: Parameters<typeof lastModelRequest>[0]) {
  const sent = await lastModelRequest(request);
  const tools = sent.messages.filter((m: { role: string }) => m.role === "tool");
  return tools[tools.length - 1]?.content;
}

test("a tool call that needs approval waits for Approve or Deny, then the answer goes on", async ({ page, request }) => {
  const errors = watchErrors(page);
  await openChat(page);

  // Approve: the call runs on the MCP server, its output joins the answer, the model finishes.
  await script(request, { kind: "tool_calls", calls: [{ name: "add", arguments: '{"a": 2, "b": 3}' }] });
  await send(page, "Add 2 and 3");
  const card = lastAnswer(page).locator(".approval-card");
  await expect(card).toHaveAttribute("data-decision", "pending");
  await expect(card.locator(".tool-name")).toHaveText("add");
  await expect(card.locator(".tool-arguments")).toContainText('"a": 2');
  await waitForAnswer(page);
  await script(request, { kind: "text", text: "2 + 3 = 5." });
  await card.getByRole("button", { name: "Approve" }).click();
  await expect(card).toHaveAttribute("data-decision", "approved");
  await expect(card.getByRole("button", { name: "Approve" })).toHaveCount(0);
  await waitForAnswer(page);
  await expect(lastAnswer(page).locator(".markdown").last()).toHaveText("2 + 3 = 5.");
  const toolCard = lastAnswer(page).locator(".tool-card");
  await expect(toolCard).toHaveAttribute("data-state", "done");
  await expect(toolCard.locator(".tool-name")).toHaveText("add");
  expect(await lastToolResult(request)).toBe("5");

  // Deny with a reason: nothing runs, the model is told why and answers.
  await script(request, { kind: "tool_calls", calls: [{ name: "add", arguments: '{"a": 1, "b": 1}' }] });
  await send(page, "Add 1 and 1");
  const second = lastAnswer(page).locator(".approval-card");
  await expect(second).toHaveAttribute("data-decision", "pending");
  await waitForAnswer(page);
  await script(request, { kind: "text", text: "Fine, I will not add them." });
  await second.getByRole("textbox", { name: "Reason for denying (optional)" }).fill("not now");
  await second.getByRole("button", { name: "Deny" }).click();
  await expect(second).toHaveAttribute("data-decision", "denied");
  await waitForAnswer(page);
  await expect(lastAnswer(page).locator(".markdown").last()).toHaveText("Fine, I will not add them.");
  expect(await lastToolResult(request)).toBe("The user did not approve this call: not now");

  // The chat was saved with the decisions: after a reload both are shown, with no buttons left.
  await page.reload();
  await page.locator("body[data-hydrated]").waitFor();
  await expect(page.locator(".approval-card")).toHaveCount(2);
  await expect(page.locator(".approval-card").first()).toHaveAttribute("data-decision", "approved");
  await expect(page.locator(".approval-card").last()).toHaveAttribute("data-decision", "denied");
  await expect(page.getByRole("button", { name: "Approve" })).toHaveCount(0);
  await expect(lastAnswer(page).locator(".markdown").last()).toHaveText("Fine, I will not add them.");
  expect(errors).toEqual([]);
});
