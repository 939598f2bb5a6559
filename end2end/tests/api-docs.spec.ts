import { expect, test } from "@playwright/test";
import { watchErrors } from "./helpers";

// The API docs page (/docs): Swagger UI, from the site's files, under the app's security policy,
// shows the server's own description and can call it.
test("the API docs page shows the API and tries a request", async ({ page }) => {
  const errors = watchErrors(page);
  await page.goto("/docs");
  await expect(page.locator(".swagger-ui .info .title")).toContainText("agent-app");
  const invocations = page.locator("#operations-Responses-invocations");
  await expect(invocations).toBeVisible();
  await expect(page.locator("#operations-Responses-responses")).toBeVisible();
  await expect(page.locator("#operations-Server-health")).toBeVisible();

  // Try it out: GET /health from the page.
  const health = page.locator("#operations-Server-health");
  await health.locator(".opblock-summary").click();
  await health.getByRole("button", { name: "Try it out" }).click();
  await health.getByRole("button", { name: "Execute" }).click();
  await expect(health.locator(".live-responses-table tbody .response-col_status")).toContainText("200");
  await expect(health.locator(".live-responses-table tbody .response-col_description")).toContainText('"status": "healthy"');
  expect(errors).toEqual([]);
});
