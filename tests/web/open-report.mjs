// Opens a self-contained HTML report (mirrorwatch diff --format html) in Debian's headless
// chromium: it must load without a script error, a failed request or a dialog, and show its
// ladder diagrams. Run by tests/diff_pairs.rs:  node open-report.mjs REPORT.html SCREENSHOT.png
import { chromium } from "playwright-core";
const [file, shot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const seen = { errors: [], requests: [], dialogs: 0 };
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
  page.on("pageerror", (e) => seen.errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") seen.errors.push(m.text()); });
  page.on("dialog", async (d) => { seen.dialogs++; await d.dismiss(); });
  // A self-contained report asks for nothing but itself.
  page.on("request", (r) => { if (!r.url().startsWith("file:")) seen.requests.push(r.url()); });
  await page.goto("file://" + file);
  seen.ladders = await page.$$eval(".ladders svg", (s) => s.length);
  seen.arrows = await page.$$eval(".ladders svg line.arrow", (s) => s.length);
  seen.rows = await page.$$eval("table.findings tbody tr", (r) => r.length);
  seen.title = await page.textContent("h1");
  if (shot) await page.screenshot({ path: shot, fullPage: true });
} catch (e) {
  seen.errors.push(String(e));
} finally {
  await browser.close();
}
console.log(JSON.stringify(seen));
process.exit(seen.errors.length || seen.requests.length || seen.dialogs ? 1 : 0);
