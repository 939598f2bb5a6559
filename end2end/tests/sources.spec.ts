import { expect, test } from "@playwright/test";
import { lastAnswer, openChat, resetModel, script, send, waitForAnswer, watchErrors } from "./helpers";

// The app under test searches end2end/fixtures/docs (AGENT_DOCS_DIR, scripts/test.sh).
test.beforeEach(async ({ request }) => {
  await resetModel(request);
});

test("an answer that cites the documents shows them as sources, links that open them", async ({ page, request }) => {
  const errors = watchErrors(page);
  await openChat(page);
  await script(
    request,
    { kind: "tool_calls", calls: [{ name: "search_documents", arguments: '{"query": "how long do cats sleep"}' }] },
    { kind: "text", text: "Cats sleep twelve to sixteen hours a day [1]." },
  );
  await send(page, "How long do cats sleep?");
  await waitForAnswer(page);
  await expect(lastAnswer(page).locator(".markdown").last()).toHaveText("Cats sleep twelve to sixteen hours a day [1].");
  const sources = lastAnswer(page).locator(".sources");
  await expect(sources.locator(".sources-title")).toHaveText("Sources");
  const link = sources.getByRole("link", { name: "Cats" });
  await expect(link).toHaveAttribute("href", "/documents/cats.md");
  await expect(link).toHaveAttribute("rel", "noopener noreferrer");
  await expect(sources.getByRole("link")).toHaveCount(1);
  // The source opens: the document, served by the app.
  const doc = await request.get("/documents/cats.md");
  expect(doc.status()).toBe(200);
  expect(await doc.text()).toContain("twelve to sixteen hours");

  // The sources come back with the saved chat.
  await page.reload();
  await page.locator("body[data-hydrated]").waitFor();
  await expect(lastAnswer(page).locator(".sources").getByRole("link", { name: "Cats" })).toBeVisible();
  expect(errors).toEqual([]);
});
