import { expect, test } from "@playwright/test";

test("the page is server-rendered, then hydrated and interactive", async ({ page }) => {
  const errors: string[] = [];
  page.on("console", (msg) => {
    // Failed loads are reported with their URL below.
    if (msg.type() === "error" && !msg.text().startsWith("Failed to load resource")) errors.push(msg.text());
  });
  page.on("pageerror", (err) => errors.push(err.message));
  page.on("response", (res) => {
    if (res.status() >= 400) errors.push(`${res.status()} ${res.url()}`);
  });

  const response = await page.goto("/");
  expect(response?.status()).toBe(200);
  await expect(page).toHaveTitle("agent-app");
  await expect(page.locator("h1")).toHaveText("agent-app");

  // The WASM bundle loaded and took over the server-rendered page.
  await page.locator("body[data-hydrated]").waitFor();
  const toggle = page.getByRole("button", { name: "Show examples" });
  await toggle.click();
  await expect(page.locator("pre.examples")).toContainText("POST http://localhost:8000/invocations");
  await expect(page.getByRole("button", { name: "Hide examples" })).toBeVisible();
  await page.getByRole("button", { name: "Hide examples" }).click();
  await expect(page.locator("pre.examples")).toHaveCount(0);

  expect(errors).toEqual([]);
});

test("the API the page advertises answers from the browser", async ({ page, request }) => {
  await page.goto("/");
  const res = await request.post("/invocations", {
    data: { input: [{ role: "user", content: "What time is it?" }] },
  });
  expect(res.status()).toBe(200);
  const body = await res.json();
  expect(body.output.map((i: { type: string }) => i.type)).toEqual([
    "function_call",
    "function_call_output",
    "message",
  ]);
});
