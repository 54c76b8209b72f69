// The Ask page's analyses come from the node's registry (GET /api/v1/analyses: name, about, the
// inputs each request takes). fromRegistry() turns one listed analysis into what app.js draws:
// a form from its inputs, its free preview, its result as a chart with 95% intervals and a table,
// CSV/JSON download. An analysis added to the registry appears with no change here; TEXT only
// gives a known analysis friendlier words.
//
// An entry has:
//   key, title                   the registry name and a short title
//   describe(ctx)                one sentence for the analyst (ctx: {terms, me, peer})
//   endpoint, previewEndpoint    API paths (POST, JSON body)
//   inputs(ctx)                  fields: {name, label, type: 'select'|'number'|'checkbox'|'text', options, value, min, max, step, hint}
//   request(ctx, values)         the JSON body of both calls (common inputs as fields, the analysis's own in `options`)
//   preview(p, ctx)              [label, text] pairs shown before running
//   result(r, ctx)               {title, rowHeader, rows: [{label, estimate, low, high, hidden, note}],
//                                facts: [[label, text]], derived: [{figure, key, estimate, low, high} | {figure, key, value}]};
//                                hidden rows (below the reporting threshold) show only note; derived: the
//                                report's `details` (the analysis's figures with their intervals)
//   ownsRun(params)              true for a stored run (its params_json) this entry can re-open at no cost
//   question(params)             the stored run's question in words, for the results history
'use strict';

(function () {
  const fmt = (n) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en') : '–');
  const eps = (n) => (Number.isFinite(n) ? Number(n.toPrecision(3)).toString() : '–');
  const columnsOf = (terms, party) => {
    const p = terms.parties.find((x) => x.name === party);
    return p ? Object.keys(p.columns || {}) : [];
  };

  // Friendlier words for analyses the console knows; any other one uses its registry `about`.
  const TEXT = {
    overlap: {
      title: 'Overlap — how many customers we share, by segment',
      describe: ({ me, peer }) =>
        `Counts the customers ${me} and ${peer} have in common, for each pair of segments you choose. ` +
        `No customer list leaves either node; every count carries noise added by ${peer}'s node.`,
      resultTitle: (r) => `Shared customers of ${r.querier} and ${r.responder}`,
    },
  };

  // One form field for one input of the registry.
  function field(input, { terms, me, peer }) {
    const none = { value: '', label: input.kind.endsWith('column') ? '(no split: everyone)' : '(default)' };
    const base = { name: input.name, label: input.label, hint: input.about };
    const choices = (values) => (input.required ? [] : [none]).concat(values.map((c) => ({ value: c, label: c })));
    switch (input.kind) {
      case 'own_column':
        return { ...base, label: input.label.replace(/^Split our customers/, `Split ${me}'s customers`), type: 'select', options: choices(columnsOf(terms, me)) };
      case 'peer_column':
        return { ...base, label: input.label.replace(/^Split the partner's customers/, `Split ${peer}'s customers`), type: 'select', options: choices(columnsOf(terms, peer)) };
      case 'join_key':
        return { ...base, type: 'select', options: terms.join_keys.map((k) => ({ value: k, label: k })) };
      case 'choice':
        return { ...base, type: 'select', options: choices(input.choices), value: input.default };
      case 'epsilon': {
        const mine = terms.parties.find((x) => x.name === me);
        return { ...base, type: 'number', value: mine ? Math.min(1, mine.budget.epsilon_per_query) : 1, min: 0.01, step: 0.01,
          max: terms.parties.reduce((m, p) => Math.min(m, p.budget.epsilon_per_query), Infinity),
          hint: `${input.about}. At most the smaller per-query cap of the two sides.` };
      }
      case 'number':
      case 'integer':
        return { ...base, type: 'number', value: input.default ?? '', step: input.kind === 'integer' ? 1 : 'any', required: input.required };
      case 'boolean':
        return { ...base, type: 'checkbox', value: input.default === true };
      default:
        return { ...base, type: 'text', value: input.default ?? '', required: input.required };
    }
  }

  // The request body from the form's values: the common inputs as top-level fields of the
  // query, an analysis's own inputs (`option: true`) as strings inside `options`.
  function body(info, { agreementId }, v) {
    const out = {};
    const options = {};
    for (const input of info.inputs) {
      const raw = v[input.name];
      let value;
      if (input.kind === 'agreement') value = agreementId;
      else if (input.kind === 'boolean') value = raw === true;
      else if (raw === undefined || raw === '') value = input.required ? null : undefined;
      else if (['epsilon', 'number', 'integer'].includes(input.kind)) value = Number(raw);
      else value = raw;
      if (value === undefined) continue;
      if (input.option) { if (value !== null) options[input.name] = String(value); } else out[input.name] = value;
    }
    if (Object.keys(options).length) out.options = options;
    return out;
  }

  // The derived figures of a report (its `details`) as rows: every {estimate, ci_low, ci_high}
  // becomes a figure with its interval, named by its path (array items by their first text
  // field, e.g. an arm or a segment); other numbers and texts become plain facts.
  function figures(details) {
    const rows = [];
    const walk = (v, path, key) => {
      // A rate, share, index or ratio without an estimate: a denominator is empty or too small
      // against its noise (analyses-v1 §1.3, the known-range rule), said, not left out.
      if (v === null && /(rate|share|index|lift_rel|ratio|per_member)$/.test(key)) {
        rows.push({ figure: path, key, value: 'too small to estimate' });
        return;
      }
      if (v === null || v === undefined) return;
      if (Array.isArray(v)) {
        v.forEach((x, i) => {
          const name = x && typeof x === 'object' ? Object.values(x).find((y) => typeof y === 'string') : undefined;
          walk(x, `${path}[${name ?? i}]`, key);
        });
      } else if (typeof v === 'object') {
        if (['estimate', 'ci_low', 'ci_high'].every((k) => typeof v[k] === 'number')) {
          rows.push({ figure: path, key, estimate: v.estimate, low: v.ci_low, high: v.ci_high });
          return;
        }
        // A flattened figure (e.g. lift's arm: {name, size, conversions, rate, ci_low, ci_high}):
        // the interval belongs to its `rate` (or `index`, `share`, `value`).
        const point = ['rate', 'index', 'share', 'value'].find((k) => typeof v[k] === 'number');
        const flat = point && typeof v.ci_low === 'number' && typeof v.ci_high === 'number';
        if (flat) rows.push({ figure: `${path}.${point}`, key: point, estimate: v[point], low: v.ci_low, high: v.ci_high });
        for (const [k, x] of Object.entries(v)) {
          if (flat && [point, 'ci_low', 'ci_high'].includes(k)) continue;
          walk(x, path ? `${path}.${k}` : k, k);
        }
      } else if (typeof v === 'number' || typeof v === 'string' || typeof v === 'boolean') {
        rows.push({ figure: path, key, value: v });
      }
    };
    walk(details, '', '');
    return rows;
  }

  function preview(p, { me, peer }) {
    // Computed by the node (tandem_node::budget::queries_left), as `tandem budget` and the
    // signed budget views are, so every screen gives the same N for the same ledger.
    const mineMore = p.querier_queries_left ?? null;
    return [
      ['Cost now', p.cached
        ? 'Nothing: this exact question was answered on unchanged data; the stored answer is returned.'
        : `${me} spends ε ${eps(p.querier_cost.epsilon)}, ${peer} spends ε ${eps(p.responder_cost.epsilon)}.`],
      ['Counts returned', `${p.cells} (one per pair of segments)`],
      ['Expected precision', `each count within ± ${fmt(p.half_width_95)} of the truth, 95% of the time ` +
        `(interval width ${fmt(2 * p.half_width_95)})`],
      // A value analysis: the sums' own precision (the counts' is not the value's).
      ...(p.value_half_width_95 == null ? [] : [['Expected precision of the values',
        `each segment's sum within ± ${fmt(p.value_half_width_95)} ${p.value_unit ?? ''} of the truth, 95% of the time`]]),
      [`${me}'s budget`, `ε ${eps(p.querier_epsilon_left)} left` +
        (mineMore === null ? '' : `: about ${mineMore} more questions like this`)],
      [`${peer}'s limit`, `at most ε ${eps(p.responder_per_query_cap)} per question`],
    ];
  }

  function result(titleOf, r) {
    const rows = r.cells.map((c) => ({
      label: [r.querier_column && c.querier_group, r.responder_column && c.responder_group]
        .filter(Boolean).join(' · ') || 'everyone',
      estimate: c.estimate,
      low: c.ci_low,
      high: c.ci_high,
      hidden: c.below_threshold,
      note: c.below_threshold ? `< ${r.threshold}` : '',
    }));
    const spent = r.cached
      ? 'nothing now (stored answer)'
      : `${r.querier_budget.party} ε ${eps(r.querier_budget.epsilon_spent)}, ` +
        `${r.responder_budget.party} ε ${eps(r.responder_budget.epsilon_spent)}`;
    const derived = r.details ? figures(r.details) : [];
    return {
      title: titleOf(r),
      derived,
      rowHeader: [r.querier_column, r.responder_column].filter(Boolean).join(' · ') || 'Segment',
      rows,
      facts: [
        ['Split', `${r.querier}: ${r.querier_column || 'none'} · ${r.responder}: ${r.responder_column || 'none'}`],
        ['Matched on', r.join_key],
        ['Privacy budget (ε)', eps(r.epsilon)],
        ['Spent', spent],
        ['Intervals', `${Math.round(r.confidence * 100)}%; counts below ${r.threshold} are shown as “< ${r.threshold}”`],
        ['Budget left', `${r.querier_budget.party} ε ${eps(r.querier_budget.epsilon_left)}, ` +
          `${r.responder_budget.party} ε ${eps(r.responder_budget.epsilon_left)}`],
      ],
    };
  }

  function fromRegistry(info) {
    const text = TEXT[info.name] || {};
    const title = text.title || `${info.about} (${info.name})`;
    return {
      key: info.name,
      title,
      describe: text.describe || (() => info.about),
      endpoint: info.endpoint,
      previewEndpoint: info.preview_endpoint,
      inputs: (ctx) => info.inputs.filter((i) => i.kind !== 'agreement').map((i) => field(i, ctx)),
      request: (ctx, v) => body(info, ctx, v),
      preview,
      result: (r) => result(text.resultTitle || ((x) => `${info.about}: ${x.querier} and ${x.responder}`), r),
      ownsRun: (params) => !!params && (params.analysis === info.name || (!params.analysis && info.name === 'overlap')),
      question: (params) =>
        `${info.name === 'overlap' ? 'Overlap' : info.name} by ${params.querier_column || 'everyone'} × ` +
        `${params.responder_column || 'everyone'}, matched on ${params.join_key}, ε ${eps(params.epsilon)}`,
    };
  }

  window.TANDEM_ANALYSES_FROM_REGISTRY = (list) => list.map(fromRegistry);
})();
