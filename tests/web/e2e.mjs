// End-to-end dashboard test in Debian's chromium (headless), driven by playwright-core.
// Run by tests/web_browser.rs:  node e2e.mjs CONFIG.json
// CONFIG: {base, password, search_user, hostile_users[], rule_file, preview_counter,
//          preview_expected, bad_line, bad_col, screenshots}
// Prints one JSON line with what it saw; exits 1 on the first failed check.
import { chromium } from "playwright-core";
import { readFileSync, mkdirSync } from "node:fs";

const cfg = JSON.parse(readFileSync(process.argv[2], "utf8"));
const shots = cfg.screenshots;
mkdirSync(shots, { recursive: true });
const seen = { dialogs: 0, page_errors: [], console_errors: [], checks: [] };

function check(cond, what) {
  seen.checks.push(what);
  if (!cond) throw new Error("check failed: " + what);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
let failed = null;
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: "en-US",
                                             timezoneId: "Asia/Tokyo" });
  const page = await context.newPage();
  // No script may ever run from data: an alert()/confirm() from an injected name would show here.
  page.on("dialog", async (d) => { seen.dialogs++; await d.dismiss(); });
  page.on("pageerror", (e) => seen.page_errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") seen.console_errors.push(m.text()); });
  const shot = (name) => page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });

  // Login: redirected there, a wrong password refused, the right one lets in.
  await page.goto(cfg.base + "/identities");
  check(page.url().includes("/login"), "a page without a session redirects to the login page");
  await shot("login");
  await page.fill("input[name=password]", "not the password");
  await page.click("button[type=submit]");
  check((await page.textContent("p.error")).includes("Wrong password"), "a wrong password is refused");
  await page.fill("input[name=password]", cfg.password);
  await Promise.all([page.waitForURL((u) => !u.pathname.startsWith("/login")), page.click("button[type=submit]")]);
  check(new URL(page.url()).pathname === "/identities", "login returns to the page asked for");
  const cookies = await context.cookies();
  const sess = cookies.find((c) => c.name === "mw_session");
  check(sess && sess.httpOnly && sess.sameSite === "Strict", "the session cookie is HttpOnly and SameSite=Strict");

  // Overview: tiles and a drawn chart with data, times in local time.
  await page.goto(cfg.base + "/");
  await page.waitForSelector("figure.chart svg path.line0", { state: "attached" });
  const drawn = Number(await page.getAttribute("figure.chart", "data-drawn"));
  check(drawn > 0, `the overview chart is drawn with data (${drawn} points)`);
  const t = await page.$eval("time[data-us]", (e) => [e.textContent, e.title]);
  check(t && !t[0].includes("UTC") && t[1].includes("UTC"), "times are shown in the browser's time zone");
  await shot("overview");

  // Counters: the list, one counter's chart, a grouped counter's top-N linking to a group's chart.
  await page.goto(cfg.base + "/counters");
  await shot("counters");
  await page.click(`a[href^="/counters/${cfg.chart_counter}?"]`);
  await page.waitForSelector("figure.chart svg path.line0", { state: "attached" });
  check(Number(await page.getAttribute("figure.chart", "data-drawn")) > 0, "a counter chart renders with data");
  await shot("counter");
  await page.goto(cfg.base + `/counters/${cfg.grouped_counter}?range=7d`);
  const group = page.locator("table.list a[href*='key=']").first();
  check((await group.count()) > 0, "a grouped counter lists its groups");
  await group.click();
  await page.waitForSelector("figure.chart svg path.line0", { state: "attached" });
  check(page.url().includes("key="), "a group links to its own chart");

  // Identities: search, hostile names as text, MAC history.
  await page.goto(cfg.base + "/identities");
  await page.fill("input[name=q]", cfg.search_user);
  await Promise.all([page.waitForURL(/q=/), page.click("form.search button")]);
  const users = await page.$$eval("table.identities td.user", (tds) => tds.map((td) => td.textContent));
  check(users.length > 0 && users.every((u) => u.includes(cfg.search_user)), `search finds ${cfg.search_user} only`);
  await shot("identities-search");
  await page.goto(cfg.base + "/identities");
  const all = await page.$$eval("td.user", (tds) => tds.map((td) => td.textContent));
  for (const h of cfg.hostile_users) {
    check(all.includes(h), `hostile user name shown as text: ${JSON.stringify(h)}`);
  }
  check((await page.$$("main img, main script, main iframe")).length === 0, "no element came from a user name");
  await shot("identities");
  await page.click("table.identities td a[href^='/identities/mac/']");
  await page.waitForSelector("h1");
  check((await page.textContent("h1")).includes("History of"), "a MAC links to its history");
  await shot("mac-history");

  // Retransmissions: the lossy pair stands out.
  await page.goto(cfg.base + "/retransmissions?range=7d");
  check((await page.$$("tr.hot")).length > 0, "a pair far above its baseline is highlighted");
  await shot("retransmissions");
  await page.click("tr.hot a");
  await page.waitForSelector("figure.chart svg path.line0", { state: "attached" });
  await shot("retransmissions-pair");

  // Application errors.
  await page.goto(cfg.base + "/errors?range=7d");
  const errText = await page.textContent("main");
  check(cfg.error_codes.every((c) => errText.includes(c)), `errors page shows ${cfg.error_codes.join(", ")}`);
  await shot("errors");

  // Alerts: acknowledge one (a POST with the CSRF token from the form).
  await page.goto(cfg.base + "/alerts");
  await shot("alerts");
  const before = await page.$$eval("form[action$='/ack']", (f) => f.length);
  await Promise.all([page.waitForURL(/\/alerts$/), page.click("form[action$='/ack'] button")]);
  const after = await page.$$eval("form[action$='/ack']", (f) => f.length);
  check(after === before - 1, "acknowledging an alert sticks");

  // Rules: preview count, then a syntax error at its line and column.
  await page.goto(cfg.base + `/rules/edit?file=${cfg.rule_file}`);
  await page.click("#rule-check");
  const cell = `#rule-preview td[data-counter="${cfg.preview_counter}"]`;
  await page.waitForSelector(cell);
  const got = Number(await page.textContent(cell));
  check(got === cfg.preview_expected, `preview of ${cfg.preview_counter}: ${got} frames (filter --count: ${cfg.preview_expected})`);
  await shot("rules-preview");
  const text = await page.inputValue("#rule-text");
  await page.fill("#rule-text", text + cfg.bad_rule);
  await page.click("#rule-check");
  await page.waitForSelector("#rule-errors li[data-line]");
  const [line, col] = await page.$eval("#rule-errors li[data-line]", (li) => [Number(li.dataset.line), Number(li.dataset.col)]);
  check(line === cfg.bad_line && col === cfg.bad_col, `the syntax error is at ${line}:${col} (expected ${cfg.bad_line}:${cfg.bad_col})`);
  await shot("rules-error");
  // Saving the broken text is refused and shows the same place.
  await page.click("#rule-form button[type=submit]");
  await page.waitForSelector("#rule-errors li[data-line]");
  const saved = await page.$eval("#rule-errors li[data-line]", (li) => [Number(li.dataset.line), Number(li.dataset.col)]);
  check(saved[0] === cfg.bad_line && saved[1] === cfg.bad_col, "saving a broken rule file is refused at the same place");

  // Captures: upload a normal and a failure run, pin the normal one, diff the other against it.
  for (const f of [cfg.diff_normal, cfg.diff_failure]) {
    await page.goto(cfg.base + "/captures");
    await page.setInputFiles("#upload-file", f);
    await Promise.all([page.waitForEvent("load"), page.click("#upload-form button")]);
  }
  const base = cfg.diff_normal.split("/").pop();
  const fail = cfg.diff_failure.split("/").pop();
  await Promise.all([page.waitForURL(/\/captures$/),
    page.click(`tr:has(td:text-is("${base}")) form[action="/captures/pin"] button`)]);
  check((await page.textContent("main p")).includes(base), "a capture is pinned as the normal baseline");
  await shot("captures");
  await page.click(`tr:has(td:text-is("${fail}")) a[href^="/captures/diff"]`);
  await page.waitForSelector(".ladders svg");
  check((await page.textContent("body")).includes(cfg.diff_expect), `the diff against the baseline says ${cfg.diff_expect}`);
  await shot("captures-diff");

  // Japanese.
  await page.goto(cfg.base + "/");
  await Promise.all([page.waitForURL(/\/$/), page.click("a[lang=ja]")]);
  check((await page.textContent("header nav")).includes("概要"), "the language switch shows Japanese");
  await page.waitForSelector("figure.chart svg", { state: "attached" });
  await shot("overview-ja");
  await page.goto(cfg.base + "/identities");
  await shot("identities-ja");

  // Logout ends the session.
  await Promise.all([page.waitForURL(/\/login/), page.click("header form button")]);
  await page.goto(cfg.base + "/alerts");
  check(page.url().includes("/login"), "after logout pages need a login again");

  check(seen.dialogs === 0, "no dialog ever opened");
  check(seen.page_errors.length === 0, "no script error: " + seen.page_errors.join("; "));
} catch (e) {
  failed = String(e && e.stack || e);
} finally {
  await browser.close();
}
seen.failed = failed;
console.log(JSON.stringify(seen));
process.exit(failed ? 1 : 0);
