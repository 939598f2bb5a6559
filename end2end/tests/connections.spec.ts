import { expect, test } from "@playwright/test";
import { lastAnswer, openChat, resetModel, script, send, waitForAnswer, watchErrors } from "./helpers";

test.beforeEach(async ({ request }) => {
  await resetModel(request);
});

// The app under test has the MCP SDK's test server (scripts/test.sh), whose `sign_in_required` fails
// as a Databricks tool behind a per-user OAuth connection does when the user has not signed in.
test("a tool that needs the user to sign in to a connection shows a Sign in button with its address", async ({ page, request }) => {
  const errors = watchErrors(page);
  await openChat(page);
  await script(
    request,
    { kind: "tool_calls", calls: [{ name: "sign_in_required", arguments: '{"connection": "github_u2m"}' }] },
    { kind: "text", text: "You need to sign in to GitHub first." },
  );
  await send(page, "List my GitHub issues");
  await waitForAnswer(page);
  const prompt = lastAnswer(page).locator(".connection-login");
  await expect(prompt).toContainText("sign in to the connection github_u2m");
  const link = prompt.getByRole("link", { name: "Sign in" });
  await expect(link).toHaveAttribute("href", "https://workspace.example.com/explore/connections/github_u2m");
  await expect(link).toHaveAttribute("target", "_blank");
  expect(errors).toEqual([]);
});
