// Tandem console: plain JavaScript, no framework. Keeps the bearer token in sessionStorage and
// calls the node's JSON API with it; never shows an identifier, a digest or a key.
'use strict';

(function () {
  const TOKEN_KEY = 'tandem.token';
  // The node's analyses (GET /api/v1/analyses), as analyses.js turns them into forms and charts.
  let ANALYSES = [];
  const PAGES = { agreements: 'Agreements', ask: 'Ask', history: 'Results history', audit: 'Audit log' };
  const ROLE_PAGES = {
    analyst: ['agreements', 'ask', 'history'],
    auditor: ['agreements', 'history', 'audit'],
    admin: ['agreements', 'history'],
  };
  const AUDIT_PAGE_SIZE = 25;
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const $ = (id) => document.getElementById(id);

  const state = { me: null, node: null, role: null, flash: '', agreements: [], audit: null, auditPage: 0, lastChart: [] };

  // ---------- small helpers ----------

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  function svg(tag, attrs, ...children) {
    const e = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'text') e.textContent = v;
      else e.setAttribute(k, v);
    }
    for (const c of children.flat(Infinity)) if (c) e.append(c);
    return e;
  }

  const count = (n) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en') : '–');
  const countOf = count;
  let chartSeq = 0;
  // A derived figure (rate, index, lift, p-value …): four significant digits.
  const figure = (n) => (Number.isFinite(n) ? Number(n.toPrecision(4)).toLocaleString('en', { maximumFractionDigits: 6 }) : '–');
  const eps = (n) => (Number.isFinite(n) ? Number(Number(n).toPrecision(3)).toString() : '–');
  const when = (ms) => (Number.isFinite(ms) ? new Date(ms).toISOString().replace('T', ' ').slice(0, 16) + ' UTC' : '–');
  // `token:carol(analyst)` → `carol (analyst)`; `peer:shopx` → `shopx's node`.
  const actor = (a) => String(a).replace(/^token:(.*)\((\w+)\)$/, '$1 ($2)').replace(/^peer:(.*)$/, "$1's node");
  const dl = (pairs) => el('dl', { class: 'facts' }, pairs.map(([k, v]) => [el('dt', { text: k }), el('dd', { text: v })]));

  function status(text) { $('status').textContent = text || ''; }
  // An agreement's id in a message becomes its label; any other long hex run (a run id, a
  // fingerprint, a key) is left out: the console never shows one.
  function readable(text) {
    return String(text || '').replace(/\b[0-9a-f]{12,}\b/gi, (hex) => {
      const a = state.agreements.find((x) => x.id.startsWith(hex.toLowerCase()));
      return a ? `“${labelOf(a)}”` : '(id)';
    });
  }
  function showError(text) {
    const e = $('error');
    e.textContent = readable(text);
    e.hidden = !text;
  }

  // Identifiers, digests, keys and signatures never reach the screen: keys with such names and
  // long hexadecimal strings are dropped from anything shown or downloaded.
  const SECRET_KEY = /^(?!join_key$).*(^|_)(id|ids|hash|sha256|signature|signatures|sig|key|keys|fingerprint|digest|digests|token|url|account|accounts)$/i;
  const HEXISH = /(^tdm_|[0-9a-f]{16,}|^[A-Za-z0-9+/=_-]{40,}$)/i;
  function scrub(v) {
    if (Array.isArray(v)) return v.map(scrub).filter((x) => x !== undefined);
    if (v && typeof v === 'object') {
      const out = {};
      for (const [k, x] of Object.entries(v)) {
        if (SECRET_KEY.test(k)) continue;
        const s = scrub(x);
        if (s !== undefined) out[k] = s;
      }
      return out;
    }
    if (typeof v === 'string' && HEXISH.test(v)) return undefined;
    return v;
  }

  function download(name, type, text) {
    const url = URL.createObjectURL(new Blob([text], { type }));
    const a = el('a', { href: url, download: name });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }

  const csvCell = (v) => {
    const s = v === null || v === undefined ? '' : String(v);
    return /[",\n\r]/.test(s) || /^[=+\-@]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
  };
  const csv = (header, rows) => [header, ...rows].map((r) => r.map(csvCell).join(',')).join('\r\n') + '\r\n';

  // ---------- API ----------

  async function api(path, options) {
    const token = sessionStorage.getItem(TOKEN_KEY);
    const opts = Object.assign({ headers: {} }, options || {});
    opts.headers = Object.assign({ Authorization: 'Bearer ' + token, Accept: 'application/json' }, opts.headers);
    if (opts.json !== undefined) {
      opts.method = opts.method || 'POST';
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(opts.json);
    }
    let resp;
    try {
      resp = await fetch(path, opts);
    } catch (e) {
      throw new Error('The node cannot be reached (' + e.message + ').');
    }
    const type = resp.headers.get('content-type') || '';
    const isJson = type.startsWith('application/json');
    if (!resp.ok) {
      let message = `The node answered ${resp.status}.`;
      if (isJson) {
        const body = await resp.json().catch(() => null);
        if (body && body.error) message = body.error;
      }
      if (resp.status === 401) {
        // Unknown, revoked or expired token: back to the sign-in page, saying why.
        sessionStorage.removeItem(TOKEN_KEY);
        state.role = null;
        state.flash = 'That token is not known to this node, or it was revoked. Sign in again.';
        setTimeout(route, 0);
      }
      const err = new Error(message);
      err.status = resp.status;
      throw err;
    }
    return isJson ? resp.json() : resp.text();
  }

  // ---------- agreements ----------

  function partiesOf(doc) { return doc.terms.parties.map((p) => p.name); }
  function labelOf(a) {
    const t = a.agreement.terms;
    return `${partiesOf(a.agreement).join(' ↔ ')}: ${t.purpose}`;
  }
  function peerOf(terms) {
    const p = terms.parties.find((x) => x.name !== state.node);
    return p ? p.name : '';
  }
  // Tables name an agreement by its parties (and its expiry when two agreements share them).
  function agreementLabelById(id) {
    const a = state.agreements.find((x) => x.id === id);
    if (!a) return '(an agreement no longer on this node)';
    const parties = partiesOf(a.agreement).join(' ↔ ');
    const twins = state.agreements.filter((x) => partiesOf(x.agreement).join(' ↔ ') === parties);
    return twins.length > 1 ? `${parties} (until ${a.agreement.terms.expires_at.slice(0, 10)})` : parties;
  }

  async function loadAgreements() {
    const list = await api('/api/v1/agreements');
    state.agreements = list.filter((a) => a.agreement && a.agreement.terms);
    return state.agreements;
  }

  function learns(terms, asker, answerer) {
    const ac = Object.keys((terms.parties.find((p) => p.name === asker) || {}).columns || {});
    const bc = Object.keys((terms.parties.find((p) => p.name === answerer) || {}).columns || {});
    const list = (cols) => (cols.length ? cols.join(', ') : 'no columns (totals only)');
    return el('li', {},
      el('strong', { text: `When ${asker} asks: ` }),
      `${asker} learns, for each pair of segments (${asker}'s ${list(ac)} × ${answerer}'s ${list(bc)}), ` +
      `how many customers the two share, with random noise added by ${answerer}'s node, and the size of ` +
      `each of ${answerer}'s segments, also noised. ${answerer} learns only the noised size of each of ` +
      `${asker}'s segments asked about, and never sees the answer. ${answerer} spends the question's ε, ` +
      `${asker} a quarter of it.`);
  }

  function gauge(label, cap, spent, reserved, left, lines) {
    const pct = (x) => Math.max(0, Math.min(100, cap > 0 ? (100 * x) / cap : 0));
    const bar = el('div', { class: 'gauge', 'aria-hidden': 'true' },
      el('span', { class: 'g-spent' }), el('span', { class: 'g-reserved' }));
    bar.children[0].style.width = pct(spent) + '%';
    bar.children[1].style.width = pct(reserved) + '%';
    const summary = `ε ${eps(spent)} spent, ${eps(reserved)} reserved, ${eps(left)} left of ${eps(cap)}`;
    return el('div', { class: 'party-budget' },
      el('h4', { text: label }),
      bar,
      el('p', { class: 'gauge-text', role: 'meter', 'aria-label': `${label} budget`, 'aria-valuemin': '0',
        'aria-valuemax': String(cap), 'aria-valuenow': String(spent + reserved), 'aria-valuetext': summary },
      summary),
      lines.filter(Boolean).map((l) => el('p', { class: 'hint', text: l })));
  }

  async function showAgreements() {
    const [list, budgets, runs] = await Promise.all([
      loadAgreements(), api('/api/v1/budget'), api('/api/v1/runs').catch(() => []),
    ]);
    const out = $('agreements-list');
    out.replaceChildren();
    if (!list.length) out.append(el('p', { text: 'This node has no agreements yet.' }));
    for (const a of list) {
      const t = a.agreement.terms;
      const peer = peerOf(t);
      const b = budgets.find((x) => x.agreement === a.id);
      const period = t.budget_refresh_days
        ? `per period of ${t.budget_refresh_days} days` + (b && b.period_start ? ` (this one began ${b.period_start.slice(0, 10)})` : '')
        : 'over the agreement\'s whole life';
      const gauges = [];
      if (b) {
        gauges.push(gauge(`${state.node} (this node)`, b.epsilon_cap, b.epsilon_spent - b.epsilon_reserved,
          b.epsilon_reserved, b.epsilon_left, [
            `Caps apply ${period}.`,
            b.queries_left_like_last === null || b.queries_left_like_last === undefined
              ? 'No question charged yet.'
              : `About ${b.queries_left_like_last} more questions like the last one.`,
            b.accounting === 'zcdp' ? `By the tighter zCDP accounting only ε ${eps(b.epsilon_spent_effective)} is lost so far.` : '',
          ]));
      }
      // The partner's ledger as it last reported it with an answer to one of our questions.
      const peerTerms = t.parties.find((p) => p.name === peer);
      const last = runs.filter((r) => r.agreement_id === a.id && r.role === 'querier' && r.result_json).pop();
      if (peerTerms) {
        let view = null;
        try { view = last ? JSON.parse(last.result_json).responder_budget : null; } catch (e) { view = null; }
        if (view) {
          // The partner's node computes it (tandem_node::budget::queries_left) with its ledger.
          const more = view.queries_left_like_this ?? null;
          gauges.push(gauge(peer, peerTerms.budget.epsilon_total, view.epsilon_total_spent, 0, view.epsilon_left, [
            `As ${peer}'s node reported it on ${when(last.ended_at_ms || last.started_at_ms)}; its own node keeps the ledger.`,
            more === null ? '' : `About ${more} more questions like the last one.`,
          ]));
        } else {
          gauges.push(el('div', { class: 'party-budget' }, el('h4', { text: peer }),
            el('p', { class: 'hint', text: `Cap ε ${eps(peerTerms.budget.epsilon_total)} ${period}; ${peer} has not reported its ledger to this node yet.` })));
        }
      }
      const parties = t.parties.map((p) => el('li', {},
        `${p.name} — data kept in ${p.region}; may be split by ${Object.keys(p.columns || {}).join(', ') || 'nothing'}; ` +
        `ε at most ${eps(p.budget.epsilon_per_query)} per question and ${eps(p.budget.epsilon_total)} in total` +
        (a.agreement.signatures && a.agreement.signatures[p.name] ? ' — signed' : ' — not signed yet')));
      out.append(el('article', { class: 'agreement' },
        el('h2', { text: `${partiesOf(a.agreement).join(' ↔ ')}` }),
        el('p', { class: 'purpose', text: t.purpose }),
        dl([
          ['Status', a.status],
          ['Legal basis', t.legal_basis],
          ['Expires', t.expires_at.slice(0, 10)],
          ['Customers matched on', t.join_keys.join(', ')],
          ['Smallest count shown', `${t.min_reporting_threshold} (smaller noised counts read “< ${t.min_reporting_threshold}”)`],
          ['Results kept', `${t.retention_days} days`],
          ...(t.transfer_mechanism ? [['Cross-border transfer', t.transfer_mechanism]] : []),
          ...(t.impact_assessment ? [['Impact assessment', t.impact_assessment]] : []),
        ]),
        el('h3', { text: 'Parties' }), el('ul', {}, parties),
        el('h3', { text: 'What each side learns' }),
        el('ul', { class: 'learns' },
          learns(t, state.node, peer), learns(t, peer, state.node),
          el('li', { text: 'Neither side learns who is in the overlap: no customer list leaves either node. ' +
            'Asking the same question again on unchanged data returns the stored answer and spends nothing.' })),
        el('h3', { text: 'Privacy budget' }),
        el('div', { class: 'gauges' }, gauges)));
    }
  }

  // ---------- results: chart + table ----------

  function niceTicks(lo, hi, n) {
    const span = hi - lo || 1;
    const step0 = span / n;
    const mag = Math.pow(10, Math.floor(Math.log10(step0)));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= step0) || step0;
    const ticks = [];
    for (let v = Math.floor(lo / step) * step; ; v += step) {
      ticks.push(v);
      if (v >= hi) return ticks;
    }
  }

  function chart(view, host) {
    const count = view.fmt || countOf;
    const uid = ++chartSeq;
    const rows = view.rows;
    const width = Math.max(260, Math.min(720, host.clientWidth || 600));
    const labelW = Math.min(170, Math.round(width * 0.38));
    const rowH = 30, top = 12, bottom = 34, right = 16;
    const height = top + rows.length * rowH + bottom;
    const shown = rows.filter((r) => !r.hidden);
    const lo = Math.min(0, ...shown.map((r) => r.low));
    const hi = Math.max(view.fmt ? 0 : 1, ...shown.map((r) => r.high));
    const ticks = niceTicks(lo, hi, width < 420 ? 3 : 5);
    const x0 = ticks[0], x1 = ticks[ticks.length - 1];
    const X = (v) => labelW + ((v - x0) / (x1 - x0 || 1)) * (width - labelW - right);
    const maxChars = Math.floor(labelW / 7.2);
    const clip = (s) => (s.length > maxChars ? s.slice(0, maxChars - 1) + '…' : s);
    const s = svg('svg', { viewBox: `0 0 ${width} ${height}`, width: String(width), height: String(height),
      role: 'img', 'aria-labelledby': `chart-title-${uid} chart-desc-${uid}`, class: 'chart' },
      svg('title', { id: `chart-title-${uid}`, text: view.title }),
      svg('desc', { id: `chart-desc-${uid}`, text: `Estimate of each count (dot) with its 95% interval (line). ` +
        `The table beside the chart gives the same figures.` }));
    for (const t of ticks) {
      s.append(svg('line', { x1: X(t), x2: X(t), y1: top - 4, y2: height - bottom + 4, class: t === 0 ? 'axis zero' : 'axis' }),
        svg('text', { x: X(t), y: height - bottom + 20, 'text-anchor': 'middle', class: 'tick', text: count(t) }));
    }
    rows.forEach((r, i) => {
      const y = top + i * rowH + rowH / 2;
      const g = svg('g', { class: r.hidden ? 'row hidden-row' : 'row' },
        svg('title', { text: r.hidden ? `${r.label}: ${r.note}` : `${r.label}: ${count(r.estimate)} (95% interval ${count(r.low)} to ${count(r.high)})` }),
        svg('text', { x: labelW - 8, y: y + 4, 'text-anchor': 'end', class: 'label', text: clip(r.label) }));
      if (r.hidden) {
        g.append(svg('text', { x: X(x0) + 6, y: y + 4, class: 'below', text: r.note }));
      } else {
        g.append(
          svg('line', { x1: X(r.low), x2: X(r.high), y1: y, y2: y, class: 'ci' }),
          svg('line', { x1: X(r.low), x2: X(r.low), y1: y - 6, y2: y + 6, class: 'ci' }),
          svg('line', { x1: X(r.high), x2: X(r.high), y1: y - 6, y2: y + 6, class: 'ci' }),
          svg('circle', { cx: X(r.estimate), cy: y, r: 4.5, class: 'est' }));
      }
      s.append(g);
    });
    return s;
  }

  function table(view) {
    return el('table', { class: 'results' },
      el('caption', { text: `${view.title} (95% intervals)` }),
      el('thead', {}, el('tr', {},
        el('th', { scope: 'col', text: view.rowHeader || 'Segment' }), el('th', { scope: 'col', class: 'num', text: 'Estimate' }),
        el('th', { scope: 'col', class: 'num', text: 'From' }), el('th', { scope: 'col', class: 'num', text: 'To' }))),
      el('tbody', {}, view.rows.map((r) => el('tr', {},
        el('th', { scope: 'row', text: r.label }),
        r.hidden ? el('td', { class: 'num below', colspan: '3', text: r.note })
          : [el('td', { class: 'num', text: count(r.estimate) }), el('td', { class: 'num', text: count(r.low) }),
            el('td', { class: 'num', text: count(r.high) })]))));
  }

  // The analysis's derived figures (the report's `details`): one table, and one chart with
  // error bars per kind of figure that has an interval (rates together, indices together …).
  function derivedTable(view) {
    return el('table', { class: 'results derived' },
      el('caption', { text: 'Derived figures (95% intervals)' }),
      el('thead', {}, el('tr', {},
        el('th', { scope: 'col', text: 'Figure' }), el('th', { scope: 'col', class: 'num', text: 'Estimate' }),
        el('th', { scope: 'col', class: 'num', text: 'From' }), el('th', { scope: 'col', class: 'num', text: 'To' }))),
      el('tbody', {}, view.derived.map((d) => el('tr', {},
        el('th', { scope: 'row', text: d.figure }),
        'value' in d ? el('td', { class: 'num', colspan: '3', text: typeof d.value === 'number' ? figure(d.value) : String(d.value) })
          : [el('td', { class: 'num', text: figure(d.estimate) }), el('td', { class: 'num', text: figure(d.low) }),
            el('td', { class: 'num', text: figure(d.high) })]))));
  }

  function derivedCharts(view) {
    const kinds = new Map();
    for (const d of view.derived) {
      if ('value' in d) continue;
      if (!kinds.has(d.key)) kinds.set(d.key, []);
      kinds.get(d.key).push({ label: d.figure, estimate: d.estimate, low: d.low, high: d.high, hidden: false, note: '' });
    }
    return [...kinds].map(([key, rows]) => ({ key, title: `${view.title}: ${key}`, rows, fmt: figure }));
  }

  function renderResult(host, analysis, result, ctx) {
    const view = analysis.result(result, ctx);
    view.derived = view.derived || [];
    const chartHost = el('div', { class: 'chart-host' });
    const base = `tandem-${analysis.key}-${new Date().toISOString().slice(0, 10)}`;
    const csvText = () => csv(['segment', 'estimate', 'ci_low', 'ci_high', 'below_threshold'],
      view.rows.map((r) => [r.label, r.hidden ? '' : r.estimate, r.hidden ? '' : r.low, r.hidden ? '' : r.high, r.hidden])
        .concat(view.derived.map((d) => ('value' in d ? [d.figure, d.value, '', '', ''] : [d.figure, d.estimate, d.low, d.high, '']))));
    const charts = derivedCharts(view).map((v) => ({ host: el('div', { class: 'chart-host derived-chart', 'data-figure': v.key }), view: v }));
    host.replaceChildren(el('section', { class: 'result', 'aria-label': 'Result' },
      el('h2', { text: view.title }),
      dl(view.facts),
      el('div', { class: 'result-grid' }, chartHost, el('div', { class: 'table-host' }, table(view))),
      view.derived.length ? el('div', { class: 'result-grid derived-grid' },
        el('div', {}, charts.map((c) => c.host)), el('div', { class: 'table-host' }, derivedTable(view))) : [],
      el('div', { class: 'buttons' },
        el('button', { type: 'button', onclick: () => download(base + '.csv', 'text/csv', csvText()) }, 'Download CSV'),
        el('button', { type: 'button', onclick: () => download(base + '.json', 'application/json',
          JSON.stringify(scrub(result), null, 2) + '\n') }, 'Download JSON'))));
    chartHost.append(chart(view, chartHost));
    for (const c of charts) c.host.append(chart(c.view, c.host));
    state.lastChart = state.lastChart.filter((c) => c.host.isConnected && c.host !== chartHost);
    state.lastChart.push({ host: chartHost, view }, ...charts);
  }

  window.addEventListener('resize', () => {
    for (const c of state.lastChart) if (c.host.isConnected) c.host.replaceChildren(chart(c.view, c.host));
  });

  // ---------- Ask ----------

  function askContext() {
    const a = state.agreements.find((x) => x.id === $('ask-agreement').value);
    if (!a) return null;
    const terms = a.agreement.terms;
    return { agreementId: a.id, terms, me: state.node, peer: peerOf(terms) };
  }
  const currentAnalysis = () => ANALYSES.find((x) => x.key === $('ask-analysis').value) || ANALYSES[0];

  function drawInputs() {
    const ctx = askContext();
    const analysis = currentAnalysis();
    const host = $('ask-inputs');
    // What the user already typed or chose survives a redraw (agreements or analyses finishing
    // loading, another agreement picked): a field of the same name and kind keeps its value,
    // a choice only if it is still offered.
    const typed = new Map([...host.querySelectorAll('select, input')]
      .map((e) => [e.name, { type: e.type, value: e.type === 'checkbox' ? e.checked : e.value }]));
    host.replaceChildren();
    $('ask-preview-out').hidden = true;
    if (!ctx || !analysis) return;
    $('ask-describe').textContent = analysis.describe(ctx);
    for (const f of analysis.inputs(ctx)) {
      const id = 'in-' + f.name;
      const hintId = f.hint ? id + '-hint' : null;
      let input;
      if (f.type === 'select') {
        input = el('select', { id, name: f.name, 'aria-describedby': hintId },
          f.options.map((o) => el('option', { value: o.value, text: o.label })));
        if (f.value !== undefined && f.value !== null) input.value = f.value;
      } else if (f.type === 'checkbox') {
        input = el('input', { id, name: f.name, type: 'checkbox', checked: f.value === true, 'aria-describedby': hintId });
      } else if (f.type === 'number') {
        input = el('input', { id, name: f.name, type: 'number', inputmode: 'decimal', required: f.required !== false,
          value: f.value, min: f.min, max: f.max, step: f.step, 'aria-describedby': hintId });
      } else {
        input = el('input', { id, name: f.name, type: 'text', required: f.required === true, value: f.value, 'aria-describedby': hintId });
      }
      const before = typed.get(f.name);
      if (before && before.type === input.type) {
        if (input.type === 'checkbox') input.checked = before.value;
        else if (input.tagName !== 'SELECT' || [...input.options].some((o) => o.value === before.value)) input.value = before.value;
      }
      host.append(el('label', { for: id, text: f.label }), input);
      if (f.hint) host.append(el('p', { id: hintId, class: 'hint', text: f.hint }));
    }
  }

  function askValues() {
    const v = {};
    for (const e of $('ask-inputs').querySelectorAll('select, input')) v[e.name] = e.type === 'checkbox' ? e.checked : e.value;
    return v;
  }

  async function loadAnalyses() {
    if (!ANALYSES.length) ANALYSES = window.TANDEM_ANALYSES_FROM_REGISTRY(await api('/api/v1/analyses'));
  }

  async function showAsk() {
    await Promise.all([loadAgreements(), loadAnalyses()]);
    const active = state.agreements.filter((a) => a.status === 'active');
    const sel = $('ask-agreement');
    const keep = sel.value;
    sel.replaceChildren(...active.map((a) => el('option', { value: a.id, text: labelOf(a) })));
    if (keep && active.some((a) => a.id === keep)) sel.value = keep;
    const an = $('ask-analysis');
    if (an.options.length !== ANALYSES.length) an.replaceChildren(...ANALYSES.map((x) => el('option', { value: x.key, text: x.title })));
    if (!active.length) status('No active agreement: both parties must sign one before questions can be asked.');
    drawInputs();
  }

  async function preview() {
    const ctx = askContext();
    const analysis = currentAnalysis();
    if (!ctx) return;
    const out = $('ask-preview-out');
    try {
      showError('');
      const p = await api(analysis.previewEndpoint, { json: analysis.request(ctx, askValues()) });
      out.replaceChildren(el('h2', { text: 'Preview (nothing spent)' }), dl(analysis.preview(p, ctx)));
      out.hidden = false;
    } catch (e) { showError(e.message); }
  }

  async function run(ev) {
    ev.preventDefault();
    const ctx = askContext();
    const analysis = currentAnalysis();
    if (!ctx) return;
    const btn = $('ask-run');
    btn.disabled = true;
    showError('');
    status('Running… the two nodes are computing the answer; this can take a while on large audiences.');
    try {
      const r = await api(analysis.endpoint, { json: analysis.request(ctx, askValues()) });
      renderResult($('ask-result'), analysis, r, ctx);
      status(r.cached ? 'Done: the stored answer was returned, nothing was spent.' : 'Done.');
      $('ask-result').querySelector('h2').setAttribute('tabindex', '-1');
      $('ask-result').querySelector('h2').focus();
    } catch (e) {
      status('');
      showError(e.message);
    } finally {
      btn.disabled = false;
    }
  }

  // ---------- history ----------

  async function showHistory() {
    const [, runs] = await Promise.all([loadAgreements(), api('/api/v1/runs'), loadAnalyses()]);
    const host = $('history-list');
    $('history-result').replaceChildren();
    if (!runs.length) { host.replaceChildren(el('p', { text: 'No questions yet.' })); return; }
    const rows = runs.slice().reverse().map((r) => {
      let params = {};
      try { params = JSON.parse(r.params_json); } catch (e) { params = {}; }
      const analysis = ANALYSES.find((x) => x.ownsRun(params));
      let open = '';
      if (analysis && r.result_json) {
        open = el('button', { type: 'button', onclick: () => {
          const result = JSON.parse(r.result_json);
          renderResult($('history-result'), analysis, result, {});
          const h = $('history-result').querySelector('h2');
          h.setAttribute('tabindex', '-1');
          h.focus();
        } }, 'Open');
      }
      return el('tr', {},
        el('td', { class: 'when', text: when(r.started_at_ms) }),
        el('td', { text: r.role === 'querier' ? actor(r.actor) : `${actor(r.actor)} (the partner)` }),
        el('td', { text: agreementLabelById(r.agreement_id) }),
        el('td', { text: analysis ? analysis.question(params) : 'another analysis' }),
        // A failed run whose charge stayed spent its ε like a finished one; a released
        // reservation or a refusal spent nothing.
        el('td', { class: 'num', text: r.charge === 'spent' || r.charge === 'reserved' ? eps(r.epsilon) : '0' }),
        el('td', { text: r.status + (r.charge === 'spent' && r.status === 'failed' ? ' (ε spent: its output may have left)'
          : r.charge ? ` (${r.charge})` : '') }),
        el('td', {}, open || (r.role === 'querier' ? 'no stored result' : 'answer not kept here')));
    });
    host.replaceChildren(el('div', { class: 'scroll' }, el('table', { class: 'history' },
      el('caption', { text: 'Newest first. ε is what this node was charged.' }),
      el('thead', {}, el('tr', {}, ['When', 'Asked by', 'Agreement', 'Question', 'ε here', 'Status', 'Result']
        .map((h) => el('th', { scope: 'col', text: h })))),
      el('tbody', {}, rows))));
  }

  // ---------- audit ----------

  function dayMs(value, plusDay) {
    if (!value) return null;
    const ms = Date.parse(value + 'T00:00:00Z');
    return Number.isFinite(ms) ? ms + (plusDay ? 86400000 : 0) : null;
  }

  function flat(obj, prefix, out) {
    for (const [k, v] of Object.entries(obj || {})) {
      const key = prefix ? `${prefix}.${k}` : k;
      if (v && typeof v === 'object' && !Array.isArray(v)) flat(v, key, out);
      else out.push(`${key}: ${Array.isArray(v) ? v.join(', ') : typeof v === 'number' ? Number(v.toPrecision(4)) : v}`);
    }
    return out;
  }

  async function loadAudit() {
    const q = new URLSearchParams();
    const from = dayMs($('audit-from').value, false);
    const to = dayMs($('audit-to').value, true);
    if (from !== null) q.set('from_ms', String(from));
    if (to !== null) q.set('to_ms', String(to));
    const text = await api('/api/v1/audit' + (q.toString() ? '?' + q : ''), { headers: { Accept: 'application/x-ndjson' } });
    const lines = text.split('\n').filter(Boolean).map((l) => JSON.parse(l));
    state.audit = {
      raw: text,
      entries: lines.filter((l) => l.type === 'entry'),
      checkpoints: lines.filter((l) => l.type === 'checkpoint'),
    };
    const actions = [...new Set(state.audit.entries.map((e) => e.event.action))].sort();
    const sel = $('audit-action');
    const keep = sel.value;
    sel.replaceChildren(el('option', { value: '', text: 'any' }), ...actions.map((a) => el('option', { value: a, text: a })));
    sel.value = actions.includes(keep) ? keep : '';
    const ag = $('audit-agreement');
    const keepAg = ag.value;
    ag.replaceChildren(el('option', { value: '', text: 'any' }),
      ...state.agreements.map((a) => el('option', { value: a.id, text: labelOf(a) })));
    ag.value = keepAg;
  }

  function filteredAudit() {
    const action = $('audit-action').value;
    const actor = $('audit-actor').value.trim().toLowerCase();
    const agreement = $('audit-agreement').value;
    return state.audit.entries.filter((e) =>
      (!action || e.event.action === action) &&
      (!actor || String(e.event.actor).toLowerCase().includes(actor)) &&
      (!agreement || e.event.agreement_id === agreement)).reverse();
  }

  function auditRow(e) {
    return {
      seq: e.seq,
      when: when(e.event.at_unix_ms),
      who: actor(e.event.actor),
      action: e.event.action,
      agreement: e.event.agreement_id ? agreementLabelById(e.event.agreement_id) : '',
      details: flat(scrub(e.event.details), '', []).join('; '),
    };
  }

  function drawAudit() {
    const all = filteredAudit();
    const pages = Math.max(1, Math.ceil(all.length / AUDIT_PAGE_SIZE));
    state.auditPage = Math.min(Math.max(0, state.auditPage), pages - 1);
    const page = all.slice(state.auditPage * AUDIT_PAGE_SIZE, (state.auditPage + 1) * AUDIT_PAGE_SIZE).map(auditRow);
    const cps = state.audit.checkpoints;
    const lastCp = cps[cps.length - 1];
    const lastEntry = state.audit.entries[state.audit.entries.length - 1];
    $('audit-summary').replaceChildren(dl([
      ['Entries', `${state.audit.entries.length} in the chosen dates, ${all.length} match the filters`],
      ['Latest signed checkpoint', lastCp ? `covers entries up to no. ${lastCp.seq}, signed ${when(lastCp.at_unix_ms)}` : 'none in these dates yet'],
      ['Not yet covered', lastCp && lastEntry ? `${Math.max(0, lastEntry.seq - lastCp.seq)} newer entries (the node signs again within a minute)` : '–'],
    ]));
    $('audit-table').replaceChildren(el('div', { class: 'scroll' }, el('table', { class: 'audit' },
      el('caption', { text: 'Newest first' }),
      el('thead', {}, el('tr', {}, ['No.', 'When', 'Who', 'Action', 'Agreement', 'Details'].map((h) => el('th', { scope: 'col', text: h })))),
      el('tbody', {}, page.length ? page.map((r) => el('tr', {},
        el('td', { class: 'num', text: String(r.seq) }), el('td', { class: 'when', text: r.when }), el('td', { text: r.who }),
        el('td', { text: r.action }), el('td', { text: r.agreement }), el('td', { class: 'details', text: r.details })))
        : el('tr', {}, el('td', { colspan: '6', text: 'No entries match.' }))))));
    $('audit-page').textContent = `Page ${state.auditPage + 1} of ${pages}`;
    $('audit-prev').disabled = state.auditPage === 0;
    $('audit-next').disabled = state.auditPage >= pages - 1;
    $('audit-checkpoints').replaceChildren(cps.length
      ? el('ul', {}, cps.slice().reverse().slice(0, 10).map((c) => el('li', { text: `Entries up to no. ${c.seq}: signed ${when(c.at_unix_ms)}` })))
      : el('p', { text: 'No checkpoint covers these entries yet.' }));
  }

  async function verifyAudit() {
    const out = $('audit-verify-out');
    out.hidden = true;
    showError('');
    status('Verifying the audit log…');
    try {
      const v = await api('/api/v1/audit/verify', { method: 'POST' });
      status('');
      out.replaceChildren(
        el('p', { class: v.ok ? 'ok' : 'bad', text: v.ok ? 'The audit log verifies.' : 'The audit log does NOT verify.' }),
        dl(v.ok ? [
          ['Entries checked', count(v.entries)],
          ['Signed checkpoints checked', count(v.checkpoints)],
          ['Not yet covered by a checkpoint', `${count(v.uncovered_entries)} newest entries (chained, but they could still be cut off the end until the next checkpoint, within a minute)`],
        ] : [
          ['First entry that fails', v.first_bad_entry === null ? '–' : `no. ${v.first_bad_entry}`],
          ['Problem', v.problem || '–'],
        ]));
      out.hidden = false;
    } catch (e) {
      status('');
      showError(e.message);
    }
  }

  async function showAudit() {
    if (!state.agreements.length) await loadAgreements();
    await loadAudit();
    state.auditPage = 0;
    drawAudit();
  }

  // ---------- pages, login ----------

  async function route() {
    showError(state.flash || '');
    state.flash = '';
    status('');
    const token = sessionStorage.getItem(TOKEN_KEY);
    const name = (location.hash || '').slice(1);
    for (const p of document.querySelectorAll('.page')) p.hidden = true;
    if (!token) {
      state.role = null;
      $('nav').hidden = true;
      $('who').hidden = true;
      $('page-login').hidden = false;
      document.title = 'Sign in — Tandem console';
      return;
    }
    if (!state.role) {
      try {
        const me = await api('/api/v1/whoami');
        Object.assign(state, { me: me.name, role: me.role, node: me.node });
      } catch (e) {
        if (e.status !== 401) {
          sessionStorage.removeItem(TOKEN_KEY);
          $('page-login').hidden = false;
          showError(e.message);
        }
        return;
      }
      $('node-name').textContent = `· node ${state.node}`;
      $('who-text').textContent = `Signed in as ${state.me} (${state.role})`;
      for (const li of $('nav').querySelectorAll('li')) li.hidden = !li.dataset.roles.split(' ').includes(state.role);
      $('nav').hidden = false;
      $('who').hidden = false;
    }
    const allowed = ROLE_PAGES[state.role] || [];
    const page = allowed.includes(name) ? name : allowed[0];
    if (page !== name) { history.replaceState(null, '', '#' + page); }
    for (const a of $('nav').querySelectorAll('a')) {
      if (a.getAttribute('href') === '#' + page) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    $('page-' + page).hidden = false;
    document.title = `${PAGES[page]} — Tandem console`;
    $('page-' + page).querySelector('h1').setAttribute('tabindex', '-1');
    $('page-' + page).querySelector('h1').focus();
    try {
      status('Loading…');
      if (page === 'agreements') await showAgreements();
      else if (page === 'ask') await showAsk();
      else if (page === 'history') await showHistory();
      else if (page === 'audit') await showAudit();
      if ($('status').textContent === 'Loading…') status('');
    } catch (e) {
      status('');
      showError(e.message);
    }
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('login-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const t = $('token').value.trim();
      if (!t) return;
      sessionStorage.setItem(TOKEN_KEY, t);
      $('token').value = '';
      state.role = null;
      route();
    });
    $('logout').addEventListener('click', () => {
      sessionStorage.removeItem(TOKEN_KEY);
      Object.assign(state, { me: null, node: null, role: null, agreements: [], audit: null });
      ANALYSES = [];
      $('node-name').textContent = '';
      location.hash = '';
      route();
    });
    $('ask-agreement').addEventListener('change', drawInputs);
    $('ask-analysis').addEventListener('change', drawInputs);
    $('ask-preview').addEventListener('click', preview);
    $('ask-form').addEventListener('submit', run);
    $('audit-form').addEventListener('submit', async (ev) => {
      ev.preventDefault();
      try { showError(''); await loadAudit(); state.auditPage = 0; drawAudit(); } catch (e) { showError(e.message); }
    });
    for (const id of ['audit-action', 'audit-agreement']) {
      $(id).addEventListener('change', () => { state.auditPage = 0; drawAudit(); });
    }
    $('audit-verify').addEventListener('click', verifyAudit);
    $('audit-prev').addEventListener('click', () => { state.auditPage -= 1; drawAudit(); });
    $('audit-next').addEventListener('click', () => { state.auditPage += 1; drawAudit(); });
    $('audit-export-jsonl').addEventListener('click', () =>
      download(`tandem-audit-${state.node}.jsonl`, 'application/x-ndjson', state.audit ? state.audit.raw : ''));
    $('audit-export-csv').addEventListener('click', () => {
      const rows = filteredAudit().map(auditRow);
      download(`tandem-audit-${state.node}.csv`, 'text/csv',
        csv(['no', 'when', 'who', 'action', 'agreement', 'details'], rows.map((r) => [r.seq, r.when, r.who, r.action, r.agreement, r.details])));
    });
    window.addEventListener('hashchange', route);
    route();
  });
})();
