// The analyses the Ask page offers, one entry each. A new analysis of the node's registry adds one
// entry here; app.js draws its inputs, its free preview and its result (chart with 95% intervals,
// table beside it, CSV/JSON download) from the entry alone.
//
// An entry has:
//   key, title                   short name and the question it answers
//   describe(ctx)                one sentence for the analyst (ctx: {terms, me, peer})
//   endpoint, previewEndpoint    API paths (POST, JSON body)
//   inputs(ctx)                  fields: {name, label, type: 'select'|'number', options, value, min, max, step, hint}
//   request(ctx, values)         the JSON body of both calls
//   preview(p, ctx)              [label, text] pairs shown before running
//   result(r, ctx)               {title, rowHeader, rows: [{label, estimate, low, high, hidden, note}],
//                                facts: [[label, text]]}; hidden rows (below the reporting threshold) show only note
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
  const moreLike = (left, cost) => (cost > 0 ? Math.floor(Math.max(0, left) / cost + 1e-9) : null);

  const overlap = {
    key: 'overlap',
    title: 'Overlap — how many customers we share, by segment',
    describe: ({ me, peer }) =>
      `Counts the customers ${me} and ${peer} have in common, for each pair of segments you choose. ` +
      `No customer list leaves either node; every count carries noise added by ${peer}'s node.`,
    endpoint: '/api/v1/queries/overlap',
    previewEndpoint: '/api/v1/queries/overlap/preview',
    inputs: ({ terms, me, peer }) => {
      const mine = terms.parties.find((x) => x.name === me);
      const none = { value: '', label: '(no split: everyone)' };
      return [
        { name: 'group_by', label: `Split ${me}'s customers by`, type: 'select',
          options: [none, ...columnsOf(terms, me).map((c) => ({ value: c, label: c }))] },
        { name: 'peer_group_by', label: `Split ${peer}'s customers by`, type: 'select',
          options: [none, ...columnsOf(terms, peer).map((c) => ({ value: c, label: c }))] },
        { name: 'join_key', label: 'Match customers on', type: 'select',
          options: terms.join_keys.map((k) => ({ value: k, label: k })) },
        { name: 'epsilon', label: 'Privacy budget for this question (ε)', type: 'number',
          value: mine ? Math.min(1, mine.budget.epsilon_per_query) : 1, min: 0.01, step: 0.01,
          max: terms.parties.reduce((m, p) => Math.min(m, p.budget.epsilon_per_query), Infinity),
          hint: 'Larger ε: narrower intervals, more budget spent. At most the smaller per-query cap of the two sides.' },
      ];
    },
    request: ({ agreementId }, v) => ({
      agreement_id: agreementId,
      join_key: v.join_key || null,
      group_by: v.group_by || null,
      peer_group_by: v.peer_group_by || null,
      epsilon: Number(v.epsilon),
    }),
    preview: (p, { me, peer }) => {
      const mineMore = moreLike(p.querier_epsilon_left, p.querier_cost.epsilon);
      return [
        ['Cost now', p.cached
          ? 'Nothing: this exact question was answered on unchanged data; the stored answer is returned.'
          : `${me} spends ε ${eps(p.querier_cost.epsilon)}, ${peer} spends ε ${eps(p.responder_cost.epsilon)}.`],
        ['Counts returned', `${p.cells} (one per pair of segments)`],
        ['Expected precision', `each count within ± ${fmt(p.half_width_95)} of the truth, 95% of the time ` +
          `(interval width ${fmt(2 * p.half_width_95)})`],
        [`${me}'s budget`, `ε ${eps(p.querier_epsilon_left)} left` +
          (mineMore === null ? '' : `: about ${mineMore} more questions like this`)],
        [`${peer}'s limit`, `at most ε ${eps(p.responder_per_query_cap)} per question`],
      ];
    },
    result: (r) => {
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
      return {
        title: `Shared customers of ${r.querier} and ${r.responder}`,
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
    },
    ownsRun: (params) => params && params.protocol === 'psi-ca-v1',
    question: (params) =>
      `Overlap by ${params.querier_column || 'everyone'} × ${params.responder_column || 'everyone'}, ` +
      `matched on ${params.join_key}, ε ${eps(params.epsilon)}`,
  };

  window.TANDEM_ANALYSES = [overlap];
})();
