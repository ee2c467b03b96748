// The console's views: each turns its /console/api answer into cards, a chart and tables.
"use strict";
window.SwitchyardConsole = window.SwitchyardConsole || {};
window.SwitchyardConsole.views = function (state) {
  const { usd, count, pct, utc, el, moneyCell, countCell, textCell, fillTable, card } = window.SwitchyardConsole.dom;
  const COLORS = ["#2f6fde", "#e07b39", "#2a9d6f", "#c94f7c", "#7a5cc7", "#c9a227", "#3aa3c9", "#8c6d4f",
    "#5f7d2a", "#b0413e"];
  const CHART_SERIES = 8;
  const $ = (id) => document.getElementById(id);

  // ---- charts -------------------------------------------------------------------------------------
  function destroyCharts() {
    for (const chart of Object.values(state.charts)) chart.destroy();
    state.charts = {};
  }

  function chart(name, node, series, xs, columns) {
    if (state.charts[name]) state.charts[name].destroy();
    node.replaceChildren();
    const width = Math.max(node.clientWidth || 0, 480);
    const opts = {
      width, height: 300,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
      scales: { x: { time: true } },
      axes: [{}, { values: (u, ticks) => ticks.map((t) => "$" + t.toLocaleString("en-US")), size: 70 }],
      series: [{ label: "day", value: (u, ts) => (ts === null ? "" : new Date(ts * 1000).toISOString().slice(0, 10)) },
        ...series],
      legend: { live: true },
    };
    state.charts[name] = new uPlot(opts, [xs, ...columns], node);
  }

  const epoch = (day) => Date.parse(day + "T00:00:00Z") / 1000;

  // The biggest groups drawn one by one, the rest summed as "other" (the table lists every group).
  function chartGroups(groups, days) {
    const picked = groups.slice(0, CHART_SERIES).map((g) => ({ label: g.label, values: g.points.map(Number) }));
    if (groups.length > CHART_SERIES) {
      const rest = days.map((_, i) => groups.slice(CHART_SERIES).reduce((sum, g) => sum + Number(g.points[i]), 0));
      picked.push({ label: "other (" + (groups.length - CHART_SERIES) + ")", values: rest });
    }
    return picked;
  }

  function spendChart(data) {
    const xs = data.days.map(epoch);
    const groups = chartGroups(data.groups, data.days);
    const money = (v) => (v === null || v === undefined ? "" : "$" + v.toFixed(4));
    if (data.groups_overlap) {
      // Tags overlap (a row counts under each of its tags): lines, not a stack.
      chart("spend", $("spend-chart"), groups.map((g, k) => ({ label: g.label, stroke: COLORS[k % COLORS.length],
        width: 2, value: (u, v) => money(v) })), xs, groups.map((g) => g.values));
      return;
    }
    // Stacked bars: each series is drawn at its cumulative height, tallest first, so the next one
    // covers its lower part; the legend shows each group's own amount.
    const cumulative = [];
    let running = xs.map(() => 0);
    for (const g of groups) {
      running = running.map((v, i) => v + g.values[i]);
      cumulative.push(running);
    }
    const order = groups.map((_, k) => k).reverse();
    const bars = uPlot.paths.bars({ size: [0.7, 40] });
    chart("spend", $("spend-chart"), order.map((k) => ({
      label: groups[k].label, fill: COLORS[k % COLORS.length], stroke: COLORS[k % COLORS.length], paths: bars,
      points: { show: false },
      value: (u, v, si, idx) => (idx === null || idx === undefined ? "" : money(groups[k].values[idx])),
    })), xs, order.map((k) => cumulative[k]));
  }

  function clearSpend(note) {
    if (state.charts.spend) state.charts.spend.destroy();
    delete state.charts.spend;
    $("spend-cards").replaceChildren();
    $("spend-chart").replaceChildren();
    $("spend-table").replaceChildren();
    $("spend-note").textContent = note;
  }

  // ---- views --------------------------------------------------------------------------------------
  const maxBilled = (rows) => rows.reduce((m, r) => Math.max(m, Number(r.billed_usd)), 0) || 1;
  function shareCell(r, top) {
    const bar = el("span", { cls: "share" });
    bar.style.width = Math.round((Number(r.billed_usd) / top) * 120) + "px";
    return el("td", {}, bar);
  }

  const RENDER = {
    spend(data) {
      const t = data.total;
      $("spend-cards").replaceChildren(
        card("Billed", usd(t.billed_usd), { "data-total": "billed_usd", "data-usd": t.billed_usd }),
        card("Requests", count(t.requests), { "data-total": "requests", "data-count": String(t.requests) }),
        card("Prompt tokens", count(t.prompt_tokens), { "data-total": "prompt_tokens", "data-count": String(t.prompt_tokens) }),
        card("Completion tokens", count(t.completion_tokens),
          { "data-total": "completion_tokens", "data-count": String(t.completion_tokens) }));
      $("spend-note").textContent = data.groups_overlap
        ? "A request with several tags counts under each of them: the tags may add up to more than the total." : "";
      spendChart(data);
      const label = { model: "Model", front_end: "Front end", project: "Project", tag: "Tag", key: "Key" }[data.by];
      fillTable($("spend-table"), [
        { title: label, cell: (g) => textCell(g.label, "wrap") },
        { title: "Billed", num: true, cell: (g) => moneyCell(g.billed_usd) },
        { title: "Requests", num: true, cell: (g) => countCell(g.requests) },
        { title: "Attempts", num: true, cell: (g) => countCell(g.attempts) },
        { title: "Prompt tokens", num: true, cell: (g) => countCell(g.prompt_tokens) },
        { title: "Cached tokens", num: true, cell: (g) => countCell(g.cached_tokens) },
        { title: "Completion tokens", num: true, cell: (g) => countCell(g.completion_tokens) },
        { title: "Reasoning tokens", num: true, cell: (g) => countCell(g.reasoning_tokens) },
      ], data.groups, (g) => g.key);
    },

    savings(data) {
      const t = data.total;
      $("savings-cards").replaceChildren(
        card("Billed", usd(t.billed_usd), { "data-total": "billed_usd", "data-usd": t.billed_usd }),
        card("Always Baseten direct", usd(t.direct_billed_usd),
          { "data-total": "direct_billed_usd", "data-usd": t.direct_billed_usd }),
        card("Saved", usd(t.savings_usd), { "data-total": "savings_usd", "data-usd": t.savings_usd }),
        card("Saved, share", pct(t.savings_percent), { "data-total": "savings_percent", "data-percent": t.savings_percent || "" }));
      const money = (v) => (v === null || v === undefined ? "" : "$" + v.toFixed(4));
      chart("savings", $("savings-chart"), [
        { label: "billed", stroke: COLORS[0], width: 2, value: (u, v) => money(v) },
        { label: "always Baseten direct", stroke: COLORS[1], width: 2, dash: [6, 4], value: (u, v) => money(v) },
      ], data.days.map((d) => epoch(d.day)), [data.days.map((d) => Number(d.billed_usd)),
        data.days.map((d) => Number(d.direct_billed_usd))]);
      const columns = (name, title) => [
        { title, cell: (r) => textCell(r[name], "wrap") },
        { title: "Requests", num: true, cell: (r) => countCell(r.requests) },
        { title: "Billed", num: true, cell: (r) => moneyCell(r.billed_usd) },
        { title: "Always direct", num: true, cell: (r) => moneyCell(r.direct_billed_usd) },
        { title: "Saved", num: true, cell: (r) => moneyCell(r.savings_usd) },
        { title: "Share", num: true, cell: (r) => el("td", { cls: "num", "data-percent": r.savings_percent || "", text: pct(r.savings_percent) }) },
      ];
      fillTable($("savings-models"), columns("model", "Model"), data.by_model, (r) => r.model);
      fillTable($("savings-front-ends"), columns("front_end", "Front end"), data.by_front_end, (r) => r.front_end);
    },

    budgets(data) {
      const list = $("budget-list");
      list.replaceChildren();
      const operatorAll = state.session.kind === "operator" && !data.tenant_id;
      for (const b of data.budgets) {
        const limit = Number(b.limit_usd);
        const share = (v) => (limit > 0 ? Math.min(100, (Number(v) / limit) * 100) : 0);
        const level = b.level === "tenant" ? "Whole tenant" : b.level === "project" ? "Project " + b.project_name
          : "Key " + b.key_prefix;
        const period = b.period === "rolling" ? "rolling " + b.window_hours + " h" : b.period === "day" ? "daily" : "monthly";
        const used = Number(b.used_percent || 0);
        const fill = el("div", { cls: "fill" + (used >= 100 ? " over" : used >= 80 ? " warn" : "") });
        fill.style.width = share(b.spent_usd) + "%";
        const leased = el("div", { cls: "leased" });
        leased.style.left = share(b.spent_usd) + "%";
        leased.style.width = Math.max(0, share(b.used_usd) - share(b.spent_usd)) + "%";
        const meter = el("div", { cls: "meter", title: pct(b.used_percent) + " of the limit" }, fill, leased);
        for (const p of b.thresholds) {
          const tick = el("div", { cls: "tick", title: p + "%" });
          tick.style.left = "calc(" + Math.min(100, Number(p)) + "% - 1px)";
          meter.append(tick);
        }
        const alerts = el("ul", { cls: "alerts" }, ...b.alerts.map((a) => el("li", { "data-alert": a.id,
          text: utc(a.created_at) + " — " + (a.type === "budget.threshold" ? a.threshold_percent + "% reached"
            : "limit reached: a request did not fit") + " (spent " + usd(a.spent_usd) + " of " + usd(a.limit_usd)
            + "; delivery " + a.status + ")" })));
        if (!b.alerts.length) alerts.append(el("li", { text: "No alerts this far." }));
        list.append(el("div", { cls: "budget", "data-budget-id": b.id },
          el("div", { cls: "title" },
            el("strong", { text: (operatorAll ? b.tenant_name + " · " : "") + level + " · " + period + (b.hard ? "" : " (soft)") }),
            el("span", {},
              el("span", { cls: "used", "data-usd": b.used_usd, text: usd(b.used_usd) }), " of ",
              el("span", { cls: "limit", "data-usd": b.limit_usd, text: usd(b.limit_usd) }), " · ",
              el("span", { cls: "percent", "data-percent": b.used_percent || "", text: pct(b.used_percent) }))),
          meter,
          el("div", { cls: "hint" }, "settled ", el("span", { cls: "spent", "data-usd": b.spent_usd, text: usd(b.spent_usd) }),
            ", leased ", el("span", { cls: "leased-usd", "data-usd": b.leased_usd, text: usd(b.leased_usd) }),
            " · thresholds " + b.thresholds.map((p) => p + "%").join(", ") + " · since " + utc(b.current_period_start)),
          alerts));
      }
      if (!data.budgets.length) list.append(el("p", { cls: "hint", text: "No budgets." }));
      fillTable($("spike-table"), [
        ...(operatorAll ? [{ title: "Tenant", cell: (s) => textCell(s.tenant_name) }] : []),
        { title: "Hour", cell: (s) => textCell(utc(s.period_start)) },
        { title: "Billed in the hour", num: true, cell: (s) => moneyCell(s.spent_usd) },
        { title: "Usual hour", num: true, cell: (s) => moneyCell(s.norm_usd) },
        { title: "Delivery", cell: (s) => textCell(s.status) },
      ], data.spikes, (s) => s.id);
    },

    top(data) {
      const operatorAll = state.session.kind === "operator" && !data.tenant_id;
      const keyTop = maxBilled(data.keys);
      fillTable($("top-keys"), [
        ...(operatorAll ? [{ title: "Tenant", cell: (r) => textCell(r.tenant_name) }] : []),
        { title: "Key", cell: (r) => textCell(r.key_prefix ? r.key_prefix + "…" : "(no key)") },
        { title: "Name", cell: (r) => textCell(r.key_name) },
        { title: "Billed", num: true, cell: (r) => moneyCell(r.billed_usd) },
        { title: "", cell: (r) => shareCell(r, keyTop) },
        { title: "Requests", num: true, cell: (r) => countCell(r.requests) },
        { title: "Prompt tokens", num: true, cell: (r) => countCell(r.prompt_tokens) },
        { title: "Completion tokens", num: true, cell: (r) => countCell(r.completion_tokens) },
      ], data.keys, (r) => r.key_id || "");
      $("top-users").replaceChildren();
      $("top-users-note").textContent = operatorAll
        ? "End users are named per tenant: pick a tenant to see its end users." : "Reading the ledger…";
    },

    users(data) {
      $("top-users-note").textContent = "";
      const userTop = maxBilled(data.users);
      fillTable($("top-users"), [
        { title: "End user", cell: (r) => textCell(r.user === null ? "(none named)" : r.user, "wrap") },
        { title: "Billed", num: true, cell: (r) => moneyCell(r.billed_usd) },
        { title: "", cell: (r) => shareCell(r, userTop) },
        { title: "Requests", num: true, cell: (r) => countCell(r.requests) },
        { title: "Prompt tokens", num: true, cell: (r) => countCell(r.prompt_tokens) },
        { title: "Completion tokens", num: true, cell: (r) => countCell(r.completion_tokens) },
      ], data.users, (r) => (r.user === null ? "" : r.user));
    },

    requests(data) {
      const operatorAll = state.session.kind === "operator" && !data.tenant_id;
      fillTable($("requests-table"), [
        { title: "Started", cell: (r) => textCell(utc(r.started_at)) },
        ...(operatorAll ? [{ title: "Tenant", cell: (r) => textCell(r.tenant_name) }] : []),
        { title: "Request", cell: (r) => textCell(r.request_id + (r.attempt > 1 ? " #" + r.attempt : "")) },
        { title: "Key", cell: (r) => textCell(r.key_prefix ? r.key_prefix + "…" : null) },
        { title: "Model", cell: (r) => textCell(r.requested_model === r.served_model ? r.served_model
          : r.requested_model + " → " + r.served_model) },
        { title: "Route", cell: (r) => textCell(r.route) },
        { title: "Status", cell: (r) => textCell(r.status + (r.http_status ? " " + r.http_status : ""), "status-" + r.status) },
        { title: "Prompt", num: true, cell: (r) => countCell(r.prompt_tokens) },
        { title: "Cached", num: true, cell: (r) => countCell(r.cached_tokens) },
        { title: "Completion", num: true, cell: (r) => countCell(r.completion_tokens) },
        { title: "Reasoning", num: true, cell: (r) => countCell(r.reasoning_tokens) },
        { title: "Cost", num: true, cell: (r) => moneyCell(r.billed_usd) },
        { title: "Time", num: true, cell: (r) => textCell(r.duration_ms === null ? null : r.duration_ms + " ms", "num") },
      ], data.requests, (r) => r.request_id + "/" + r.attempt);
    },
  };

  return { RENDER, destroyCharts, clearSpend };
};
