// Real-browser test of the web console (run by run.sh, which starts two nodes and makes the
// tokens): an analyst signs in, previews and runs an overlap, and the page's numbers and chart
// must match the node's answer; an auditor then opens the audit log. Screenshots: $SHOT_DIR.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const { CONSOLE_URL, ANALYST_TOKEN, AUDITOR_TOKEN, SHOT_DIR } = process.env;
const TRUE_OVERLAP = Number(process.env.TRUE_OVERLAP);
const profile = mkdtempSync(join(tmpdir(), 'tandem-chromium-'));
let context;
let page;

// A long hexadecimal run (agreement/run ids, hashes, keys) or a token must never be on screen.
const IDENTIFIER = /\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{16,}\b|tdm_/i;

async function shot(name) {
  await page.screenshot({ path: join(SHOT_DIR, `${name}.png`), fullPage: true });
}

async function signIn(token) {
  await page.goto(CONSOLE_URL);
  await page.getByLabel('Access token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

async function noIdentifiers() {
  const text = await page.locator('body').innerText();
  assert.doesNotMatch(text, IDENTIFIER);
}

before(async () => {
  assert.ok(CONSOLE_URL && ANALYST_TOKEN && AUDITOR_TOKEN && SHOT_DIR, 'run this through run.sh');
  context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    ignoreHTTPSErrors: true,
    viewport: { width: 1100, height: 800 },
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--ignore-certificate-errors'],
  });
  page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(15_000);
  page.on('pageerror', (e) => { throw e; });
});

after(async () => {
  await context?.close();
  rmSync(profile, { recursive: true, force: true });
});

test('an unknown token is refused and the login page stays', async () => {
  await signIn('tdm_not-a-real-token');
  await page.getByRole('alert').filter({ hasText: 'not known' }).waitFor();
  assert.equal(await page.getByRole('heading', { name: 'Sign in' }).isVisible(), true);
});

test('the analyst sees the agreement, what each side learns and both budgets', async () => {
  await signIn(ANALYST_TOKEN);
  await page.getByRole('heading', { name: 'acme ↔ shopx' }).waitFor();
  const nav = page.getByRole('navigation', { name: 'Pages' });
  assert.deepEqual(await nav.getByRole('link').allInnerTexts(), ['Agreements', 'Ask', 'Results history']);
  await page.getByText('When acme asks:').waitFor();
  await page.getByText('When shopx asks:').waitFor();
  assert.match(await page.getByRole('meter').first().getAttribute('aria-valuetext'), /ε 0 spent, 0 reserved, 10 left of 10/);
  await noIdentifiers();
  await shot('1-agreements');
});

async function registry() {
  return page.evaluate(async () => (await fetch('/api/v1/analyses', {
    headers: { Authorization: 'Bearer ' + sessionStorage.getItem('tandem.token') },
  })).json());
}

test('preview is free, the run shows a chart with error bars and a table that match the node', async () => {
  await page.getByRole('link', { name: 'Ask' }).click();
  // The Ask page offers every analysis of the node's registry, overlap first.
  const names = (await registry()).map((a) => a.name);
  await page.locator('#ask-analysis option').first().waitFor({ state: 'attached' });
  assert.deepEqual(await page.locator('#ask-analysis option').evaluateAll((os) => os.map((o) => o.value)), names);
  await page.getByLabel('Question', { exact: true }).selectOption('overlap');
  await page.getByLabel("Split acme's customers by").selectOption('age_band');
  await page.getByLabel("Split shopx's customers by").selectOption('tier');
  await page.getByLabel('Privacy budget for this question (ε)').fill('1');
  await page.getByRole('button', { name: 'Preview cost (free)' }).click();
  const preview = page.locator('#ask-preview-out');
  await preview.getByText('acme spends ε 0.25, shopx spends ε 1.').waitFor();
  assert.match(await preview.innerText(), /20 \(one per pair of segments\)/);
  await shot('2-preview');

  // Keyboard only: the Run button is reachable and pressed with Enter.
  await page.getByRole('button', { name: 'Run' }).focus();
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'Shared customers of acme and shopx' }).waitFor({ timeout: 120_000 });

  // The same question again is answered from the store at no cost: the node's numbers.
  const report = await page.evaluate(async () => {
    const a = (await (await fetch('/api/v1/agreements', { headers: { Authorization: 'Bearer ' + sessionStorage.getItem('tandem.token') } })).json())[0];
    const r = await fetch('/api/v1/queries/overlap', {
      method: 'POST',
      headers: { Authorization: 'Bearer ' + sessionStorage.getItem('tandem.token'), 'Content-Type': 'application/json' },
      body: JSON.stringify({ agreement_id: a.id, join_key: 'email', group_by: 'age_band', peer_group_by: 'tier', epsilon: 1 }),
    });
    return r.json();
  });
  assert.equal(report.cached, true);
  assert.equal(report.cells.length, 20);

  const rows = await page.locator('table.results tbody tr').evaluateAll((trs) =>
    trs.map((tr) => [...tr.children].map((c) => c.textContent)));
  assert.equal(rows.length, report.cells.length);
  const n = (s) => Number(s.replace(/,/g, ''));
  report.cells.forEach((c, i) => {
    const [label, ...vals] = rows[i];
    assert.equal(label, `${c.querier_group} · ${c.responder_group}`);
    if (c.below_threshold) assert.deepEqual(vals, [`< ${report.threshold}`]);
    else assert.deepEqual(vals.map(n), [c.estimate, c.ci_low, c.ci_high]);
  });
  // The 20 cells partition the 1,000 shared customers; the noises' sum stays inside the sum of
  // the 95% half-widths except with negligible probability.
  const sum = report.cells.reduce((s, c) => s + c.estimate, 0);
  const slack = report.cells.reduce((s, c) => s + (c.ci_high - c.ci_low) / 2, 0);
  assert.ok(Math.abs(sum - TRUE_OVERLAP) <= slack, `sum ${sum} vs ${TRUE_OVERLAP} ± ${slack}`);

  // The chart: one dot and one interval per shown cell, the dot inside its interval.
  const chart = page.getByRole('img', { name: 'Shared customers of acme and shopx' });
  const marks = await chart.locator('g.row').evaluateAll((gs) => gs.map((g) => {
    const [bar] = g.querySelectorAll('line.ci');
    const dot = g.querySelector('circle.est');
    return dot ? { x1: +bar.getAttribute('x1'), x2: +bar.getAttribute('x2'), cx: +dot.getAttribute('cx') } : null;
  }));
  assert.equal(marks.length, report.cells.length);
  report.cells.forEach((c, i) => {
    if (c.below_threshold) return assert.equal(marks[i], null);
    assert.ok(marks[i].x1 <= marks[i].cx && marks[i].cx <= marks[i].x2, `cell ${i}: ${JSON.stringify(marks[i])}`);
  });
  await noIdentifiers();
  await shot('3-result');

  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download CSV' }).click()]);
  assert.match(download.suggestedFilename(), /^tandem-overlap-.*\.csv$/);
});

test('a narrow window still reads: chart above the table, nothing wider than the screen', async () => {
  await page.setViewportSize({ width: 390, height: 800 });
  await page.waitForTimeout(200);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `page is ${overflow}px wider than the window`);
  await shot('4-result-narrow');
  await page.setViewportSize({ width: 1100, height: 800 });
});

test('results history re-opens the stored result', async () => {
  await page.getByRole('link', { name: 'Results history' }).click();
  await page.getByRole('button', { name: 'Open' }).first().click();
  await page.locator('#history-result').getByRole('heading', { name: 'Shared customers of acme and shopx' }).waitFor();
  await noIdentifiers();
  await shot('5-history');
  // After the run both parties have a gauge: this node's ledger and the partner's last report.
  await page.getByRole('link', { name: 'Agreements' }).click();
  await page.getByText(/About \d+ more questions like the last one/).first().waitFor();
  const meters = await page.getByRole('meter').evaluateAll((ms) => ms.map((m) => m.getAttribute('aria-valuetext')));
  assert.deepEqual(meters, ['ε 0.25 spent, 0 reserved, 9.75 left of 10', 'ε 1 spent, 0 reserved, 9 left of 10']);
  await shot('6-agreements-after-run');
});

test('the Ask form keeps what was typed while the agreements finish loading', async () => {
  await page.getByRole('link', { name: 'Agreements' }).click();
  await page.getByRole('link', { name: 'Ask' }).click();
  // Typed at once, before showAsk() has the agreements and redraws the form.
  const epsilon = page.getByLabel('Privacy budget for this question (ε)');
  await epsilon.fill('0.7');
  await page.waitForLoadState('networkidle');
  await page.waitForTimeout(200);
  assert.equal(await epsilon.inputValue(), '0.7');
});

// Chooses `analysis` on the Ask page and fills its form: showAsk() redraws the form when the
// agreements arrive, so the values are set again until they hold.
async function askFor(analysis, selects, texts) {
  await page.getByRole('link', { name: 'Ask' }).click();
  await page.waitForLoadState('networkidle');
  for (let tries = 0; ; tries++) {
    await page.getByLabel('Question', { exact: true }).selectOption(analysis);
    for (const [label, value] of Object.entries(selects)) await page.getByLabel(label).selectOption(value);
    for (const [label, value] of Object.entries(texts)) await page.getByLabel(label).fill(value);
    await page.waitForTimeout(100);
    const held = await Promise.all(Object.entries({ ...selects, ...texts }).map(async ([label, value]) =>
      (await page.getByLabel(label).inputValue()) === value));
    if (held.every(Boolean)) return;
    assert.ok(tries < 20, `the ${analysis} form does not keep its values`);
  }
}

test('affinity runs from the generic form with its own option, and its derived figures match the node', async () => {
  const affinity = (await registry()).find((a) => a.name === 'affinity');
  assert.ok(affinity, 'the registry lists affinity');
  const segment = affinity.inputs.find((i) => i.name === 'peer_segment');
  assert.ok(segment && segment.option && segment.required, JSON.stringify(segment));
  await askFor('affinity', { "Split acme's customers by": 'age_band', "Split shopx's customers by": 'tier' },
    { [segment.label]: 'gold', 'Privacy budget for this question (ε)': '1' });
  await page.getByRole('button', { name: 'Preview cost (free)' }).click();
  await page.locator('#ask-preview-out').getByText(/spends ε|Nothing/).first().waitFor();
  const [resp] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith(affinity.endpoint) && r.request().method() === 'POST', { timeout: 120_000 }),
    page.getByRole('button', { name: 'Run' }).click(),
  ]);
  const report = await resp.json();
  assert.equal(resp.status(), 200, JSON.stringify(report));
  // The option went inside `options`, the common inputs as fields.
  const sent = JSON.parse(resp.request().postData());
  assert.deepEqual(sent.options, { peer_segment: 'gold' });
  assert.equal(sent.group_by, 'age_band');
  assert.deepEqual(report.options, { peer_segment: 'gold' });
  assert.equal(report.details.peer_segment, 'gold');
  await page.locator('#ask-result table.derived tbody tr').first().waitFor();
  // Every index of the node's JSON is a row of the derived table and a mark of its chart.
  const table = await page.locator('#ask-result table.derived tbody tr').evaluateAll((trs) =>
    Object.fromEntries(trs.map((tr) => [tr.children[0].textContent, [...tr.children].slice(1).map((c) => c.textContent)])));
  const n = (x) => Number(x.replace(/,/g, ''));
  const close = (shown, value) => Math.abs(shown - value) <= Math.abs(value) * 1e-3 + 1e-9;
  const indices = report.details.rows.filter((r) => r.index);
  assert.ok(indices.length >= 1, JSON.stringify(report.details));
  for (const r of indices) {
    const row = table[`rows[${r.mine}].index`];
    assert.ok(row, `rows[${r.mine}].index in ${Object.keys(table).join(', ')}`);
    const [est, lo, hi] = row.map(n);
    assert.ok(close(est, r.index.estimate) && close(lo, r.index.ci_low) && close(hi, r.index.ci_high),
      `${row} vs ${JSON.stringify(r.index)}`);
  }
  const chart = page.locator('#ask-result .derived-chart[data-figure="index"]');
  assert.equal(await chart.locator('g.row').count(), indices.length);
  assert.equal(await chart.locator('circle.est').count(), indices.length);
  await noIdentifiers();
  await shot('3b-result-affinity');
  const [download] = await Promise.all([page.waitForEvent('download'),
    page.locator('#ask-result').getByRole('button', { name: 'Download CSV' }).click()]);
  const csvText = readFileSync(await download.path(), 'utf8');
  assert.ok(csvText.includes(`rows[${indices[0].mine}].index,`), csvText);
});

test('lift runs from the generic form: its arms and lift with intervals match the node', async () => {
  const lift = (await registry()).find((a) => a.name === 'lift');
  assert.ok(lift, 'the registry lists lift');
  await askFor('lift', { "Split acme's customers by": 'arm', "Split shopx's customers by": 'converted' },
    { 'Privacy budget for this question (ε)': '1' });
  const [resp] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith(lift.endpoint) && r.request().method() === 'POST', { timeout: 120_000 }),
    page.getByRole('button', { name: 'Run' }).click(),
  ]);
  const report = await resp.json();
  assert.equal(resp.status(), 200, JSON.stringify(report));
  assert.deepEqual(JSON.parse(resp.request().postData()).options, { test_arm: 'test', control_arm: 'control' });
  await page.locator('#ask-result table.derived tbody tr').first().waitFor();
  const table = await page.locator('#ask-result table.derived tbody tr').evaluateAll((trs) =>
    Object.fromEntries(trs.map((tr) => [tr.children[0].textContent, [...tr.children].slice(1).map((c) => c.textContent)])));
  const n = (x) => Number(x.replace(/,/g, ''));
  const close = (shown, value) => Math.abs(shown - value) <= Math.abs(value) * 1e-3 + 1e-9;
  const d = report.details;
  const abs = table.lift_abs.map(n);
  assert.ok(close(abs[0], d.lift_abs.estimate) && close(abs[1], d.lift_abs.ci_low) && close(abs[2], d.lift_abs.ci_high),
    `${table.lift_abs} vs ${JSON.stringify(d.lift_abs)}`);
  assert.ok(close(n(table.p_value[0]), d.p_value), `${table.p_value} vs ${d.p_value}`);
  assert.equal(await page.locator('#ask-result .derived-chart[data-figure="lift_abs"] g.row').count(), 1);
  for (const arm of d.arms) {
    const row = table[`arms[${arm.name}].rate`].map(n);
    assert.ok(close(row[0], arm.rate) && close(row[1], arm.ci_low) && close(row[2], arm.ci_high), `${row} vs ${JSON.stringify(arm)}`);
  }
  assert.equal(await page.locator('#ask-result .derived-chart[data-figure="rate"] circle.est').count(), d.arms.length);
  await noIdentifiers();
  await shot('3c-result-lift');
});

test('the auditor sees the audit log, pages through it and its checkpoints', async () => {
  await page.getByRole('button', { name: 'Sign out' }).click();
  await signIn(AUDITOR_TOKEN);
  const nav = page.getByRole('navigation', { name: 'Pages' });
  await nav.getByRole('link', { name: 'Audit' }).waitFor();
  assert.deepEqual(await nav.getByRole('link').allInnerTexts(), ['Agreements', 'Results history', 'Audit']);
  await nav.getByRole('link', { name: 'Audit' }).click();
  await page.getByRole('heading', { name: 'Audit log' }).waitFor();
  await page.locator('table.audit tbody tr').first().waitFor();
  const text = await page.locator('table.audit').innerText();
  assert.match(text, /budget\.charged/);
  assert.match(text, /carol \(analyst\)|token:carol\(analyst\)/);
  await page.getByLabel('Action').selectOption('budget.charged');
  const actions = await page.locator('table.audit tbody tr td:nth-child(4)').allInnerTexts();
  assert.ok(actions.length >= 1 && actions.every((a) => a === 'budget.charged'), actions.join(','));
  await noIdentifiers();
  await page.getByLabel('Action').selectOption('');
  await shot('7-audit');
  const [download] = await Promise.all([page.waitForEvent('download'),
    page.getByRole('button', { name: /JSON lines/ }).click()]);
  assert.match(download.suggestedFilename(), /\.jsonl$/);
  await page.getByRole('button', { name: 'Verify the log' }).click();
  await page.getByText('The audit log verifies.').waitFor();
  const verified = await page.locator('#audit-verify-out').innerText();
  assert.match(verified, /Entries checked\s+[1-9]/);
  assert.match(verified, /Not yet covered by a checkpoint\s+\d+ newest entries/);
  await noIdentifiers();
  await shot('8-audit-verified');
});
