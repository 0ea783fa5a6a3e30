// The dashboard as the field uses it, in Debian's chromium (headless), driven by playwright-core:
// a 390 px phone and a 1366 px laptop, English and Japanese, on a daemon's store of months.
// Run by tests/web_phone.rs (and tests/live_capture.rs for the silent-port banner):
//   node phone.mjs CONFIG.json
// CONFIG: {base, password, screenshots, checks: ["layout", "alerts", "captures", "preview", "banner"]}
// Prints one JSON line with what it saw; exits 1 on the first failed check.
import { chromium } from "playwright-core";
import { readFileSync, mkdirSync } from "node:fs";

const cfg = JSON.parse(readFileSync(process.argv[2], "utf8"));
const shots = cfg.screenshots;
mkdirSync(shots, { recursive: true });
const want = new Set(cfg.checks);
const seen = { dialogs: 0, page_errors: [], checks: [], widths: {}, broken_words: {} };

function check(cond, what) {
  seen.checks.push(what);
  if (!cond) throw new Error("check failed: " + what);
}

const PAGES = ["/", "/counters", "/identities", "/retransmissions", "/errors", "/alerts", "/alerts?each=1&page=2",
  "/captures", "/captures?page=2", "/rules", "/rules/edit?file=tcp.toml"];
const SIZES = [[390, 844], [1366, 768]];

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});

async function login(lang, w, h) {
  const context = await browser.newContext({ viewport: { width: w, height: h }, locale: lang === "ja" ? "ja-JP" : "en-US",
                                             timezoneId: "Asia/Tokyo" });
  const page = await context.newPage();
  page.on("dialog", async (d) => { seen.dialogs++; await d.dismiss(); });
  page.on("pageerror", (e) => seen.page_errors.push(String(e)));
  await page.goto(cfg.base + "/lang/" + lang + "?next=/login");
  await page.fill("input[name=password]", cfg.password);
  await Promise.all([page.waitForURL((u) => !u.pathname.startsWith("/login")), page.click("button[type=submit]")]);
  return page;
}

// Runs of visible ASCII (rule ids, IP addresses, MACs, file names, "warning") that the layout
// broke across lines. A run longer than 40 characters (a hostile name without a space) may
// break: it would not fit a phone otherwise.
function brokenWords() {
  const broken = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  let n;
  while ((n = walker.nextNode())) {
    const re = /[\x21-\x7e]+/g;
    let m;
    while ((m = re.exec(n.data))) {
      if (m[0].length > 40 || m[0].length < 2) continue;
      // A run that goes on in the next text node (a link, a <time>) is measured as a whole there.
      if (m.index + m[0].length === n.data.length && n.nextSibling) continue;
      const rg = document.createRange();
      rg.setStart(n, m.index);
      rg.setEnd(n, m.index + m[0].length);
      const tops = new Set([...rg.getClientRects()].filter((x) => x.width > 0).map((x) => Math.round(x.top)));
      if (tops.size > 1) broken.push(m[0]);
    }
  }
  return broken;
}

let failed = null;
try {
  if (want.has("layout")) {
    for (const lang of ["en", "ja"]) {
      for (const [w, h] of SIZES) {
        const page = await login(lang, w, h);
        for (const p of PAGES) {
          await page.goto(cfg.base + p);
          await page.waitForLoadState("load");
          const sw = await page.evaluate(() => document.documentElement.scrollWidth);
          const broken = await page.evaluate(brokenWords);
          const name = `${lang}-${w}-${p === "/" ? "overview" : p.replace(/^\//, "").replace(/[\/?=&.]/g, "_")}`;
          seen.widths[name] = sw;
          if (broken.length) seen.broken_words[name] = broken.slice(0, 5);
          await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
          if (w < 500) {
            // The phone's first screens, small enough to keep in docs/screenshots/phone.
            const height = await page.evaluate(() => document.documentElement.scrollHeight);
            mkdirSync(`${shots}/docs`, { recursive: true });
            await page.screenshot({ path: `${shots}/docs/${name}.png`, fullPage: true,
                                    clip: { x: 0, y: 0, width: w, height: Math.min(1200, height) } });
          }
          check(sw <= w, `${name}: no wider than the screen (${sw} <= ${w})`);
          check(broken.length === 0, `${name}: no word broken across lines (${broken.slice(0, 3).join(", ")})`);
        }
        if (w < 500) {
          // The navigation is behind the menu button, and opens with it.
          await page.goto(cfg.base + "/");
          check(!(await page.isVisible("header nav")), `${lang}: the phone's navigation is collapsed`);
          await page.click("label.menu-button");
          check(await page.isVisible("header nav a[href='/alerts']"), `${lang}: the menu button opens the navigation`);
          await page.screenshot({ path: `${shots}/${lang}-${w}-menu.png` });
        }
        await page.context().close();
      }
    }
  }
  const page = await login("en", 390, 844);
  if (want.has("alerts")) {
    // Active first, then critical > warning > info; one row per rule and key.
    await page.goto(cfg.base + "/alerts");
    const rows = await page.$$eval("table.alerts tbody tr", (trs) => trs.map((tr) => ({
      sev: [...tr.classList].find((c) => c.startsWith("sev-")).slice(4),
      rule: tr.querySelector("td.rule").textContent,
      key: tr.children[2].childNodes[0].textContent,
      active: tr.dataset.state === "active",
    })));
    const rank = { critical: 0, warning: 1, info: 2 };
    const order = rows.map((r) => [r.active ? 0 : 1, rank[r.sev] ?? 3]);
    const sorted = order.every((o, i) => i === 0 || order[i - 1][0] < o[0] || (order[i - 1][0] === o[0] && order[i - 1][1] <= o[1]));
    check(rows.length > 0 && sorted, `alerts: active first, then by severity (${rows.length} rows)`);
    const keys = new Set(rows.map((r) => r.rule + "\u0000" + r.key));
    check(keys.size === rows.length, "alerts: repeats folded into one row per rule and key");
    const folded = await page.$$eval("table.alerts tbody tr td:nth-child(5)", (tds) => tds.filter((t) => / · \d/.test(t.textContent)).length);
    check(folded > 0, `alerts: folded rows say how many episodes (${folded})`);
    // Each episode on its own row: more rows than fit a page, so pages.
    await page.goto(cfg.base + "/alerts?each=1");
    const total = Number((await page.textContent("nav.pager span")).replace(/[^0-9]/g, ""));
    check(total > 50, `alerts: every episode listed (${total}), 50 a page`);
    check(await page.isVisible("nav.pager a[rel=next]"), "alerts: a link to the next page");
    await page.selectOption("select[name=severity]", "critical");
    await Promise.all([page.waitForURL(/severity=critical/), page.click("form.filters button[type=submit]")]);
    const sevs = await page.$$eval("table.alerts tbody tr", (trs) => trs.map((tr) => tr.className));
    check(sevs.length > 0 && sevs.every((c) => c.includes("sev-critical")), `alerts: the severity filter (${sevs.length} critical rows)`);
    await page.screenshot({ path: `${shots}/en-390-alerts-critical.png`, fullPage: true });
  }
  if (want.has("captures")) {
    await page.goto(cfg.base + "/captures");
    const summary = await page.textContent("h2 + p");
    const before = Number(summary.replace(/,/g, "").match(/\d+/)[0]);
    const rows = await page.$$eval("table.windows tbody tr", (trs) => trs.length);
    check(before > 50 && rows === 50, `captures: ${before} evidence windows, 50 on the first page`);
    check(await page.isVisible("nav.pager a[rel=next]"), "captures: a link to the next page");
    const boxes = await page.$$("table.windows input[type=checkbox][name=id]");
    await boxes[0].check();
    await boxes[1].check();
    await Promise.all([page.waitForURL(/\/captures\/windows\/delete/), page.click("#bulk-delete button[type=submit]")]);
    check((await page.$$("form input[name=confirm][value='1']")).length === 1, "captures: delete asks for a confirmation");
    await page.screenshot({ path: `${shots}/en-390-captures-confirm.png`, fullPage: true });
    await Promise.all([page.waitForURL(/\/captures\?deleted=2/), page.click("button.danger")]);
    const after = Number((await page.textContent("h2 + p")).replace(/,/g, "").match(/\d+/)[0]);
    check(after === before - 2, `captures: two windows deleted (${before} -> ${after})`);
  }
  if (want.has("preview")) {
    await page.goto(cfg.base + "/rules/edit?file=tcp.toml");
    await page.click("#rule-check");
    await page.waitForSelector("#preview-coverage", { timeout: 120000 });
    const frames = Number(await page.getAttribute("#preview-coverage", "data-frames"));
    const text = await page.textContent("#rule-preview h2");
    check(frames > 0 && /pcap ring/.test(text), `preview over the pcap ring: ${frames} frames (${text})`);
    seen.preview_frames = frames;
    await page.screenshot({ path: `${shots}/en-390-rules-preview.png`, fullPage: true });
  }
  if (want.has("banner")) {
    await page.goto(cfg.base + "/");
    const banner = await page.$("#capture-silent");
    check(banner !== null, "overview: the silent-port banner");
    const cls = await banner.getAttribute("class");
    seen.banner = [cls, await banner.textContent()];
    check(cls.includes("bad"), "overview: the banner is red once capture.silent is due");
    await page.screenshot({ path: `${shots}/en-390-overview-silent.png`, fullPage: true });
  }
  check(seen.dialogs === 0 && seen.page_errors.length === 0, "no dialog, no script error");
} catch (e) {
  failed = String(e && e.message ? e.message : e);
} finally {
  await browser.close();
}
seen.failed = failed;
console.log(JSON.stringify(seen));
process.exit(failed ? 1 : 0);
