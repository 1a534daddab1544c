/**
 * The deployment's monitoring and probes against a real server: stories260K behind a real Fastify
 * server on loopback, configured as the base's config.json configures it (metrics public, API keys
 * on). After a plain and an ACT request, /metrics is scraped without a key as the ServiceMonitor
 * scrapes it, and every metric name in the Grafana dashboard and the Prometheus Adapter rule must
 * be among the scraped samples. Names are read with Prometheus's own PromQL grammar
 * (@prometheus-io/lezer-promql). Metrics added later need no edit here; a dashboard that names one
 * the server does not export fails.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parser } from '@prometheus-io/lezer-promql';
import { findObject, assembleBase } from '../helpers/deploy-manifests.js';
import { readYamlDocuments } from '../helpers/deploy-manifests.js';
import { repoRoot } from '../helpers/models-dir.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';

const KEY = 'live-server-test-key';

/** Sample names in a Prometheus text exposition (histograms give their _bucket, _sum and _count). */
function sampleNames(text: string): Set<string> {
  return new Set(text.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => /^[^\s{]+/.exec(l)![0]));
}

/** Grafana's variables replaced by values PromQL accepts, as Grafana would before sending. */
function interpolate(expr: string): string {
  return expr
    .replace(/\$__rate_interval|\$__interval|\$__range/g, '5m')
    .replace(/\$\{(\w+)(?::\w+)?\}|\$(\w+)/g, 'x');
}

/** The metric names an expression selects; fails on a syntax error. */
function metricNames(expr: string, where: string): string[] {
  const query = interpolate(expr);
  const names: string[] = [];
  parser.parse(query).iterate({
    enter(node) {
      assert.ok(!node.type.isError, `${where}: PromQL syntax error at ${node.from} in ${query}`);
      if (node.name === 'VectorSelector') {
        const id = node.node.getChild('Identifier');
        if (id) names.push(query.slice(id.from, id.to));
      }
    },
  });
  return names;
}

interface Panel {
  title?: string;
  type: string;
  repeat?: string;
  targets?: { expr?: string }[];
  panels?: Panel[];
}
interface Dashboard {
  panels: Panel[];
  templating: { list: { name: string; type: string; query?: string | { query: string } }[] };
}

const dashboard = JSON.parse(readFileSync(join(repoRoot, 'deploy', 'grafana', 'attune.json'), 'utf8')) as Dashboard;

function dashboardQueries(): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  const walk = (panels: Panel[]) => {
    for (const p of panels) {
      for (const t of p.targets ?? []) if (t.expr) out.push({ where: `panel "${p.title}"`, expr: t.expr });
      walk(p.panels ?? []);
    }
  };
  walk(dashboard.panels);
  for (const v of dashboard.templating.list.filter((x) => x.type === 'query')) {
    const q = typeof v.query === 'string' ? v.query : v.query!.query;
    // label_values(SELECTOR, label): the selector is PromQL.
    const selector = /^label_values\((.*),\s*\w+\)$/.exec(q)?.[1] ?? q;
    out.push({ where: `variable $${v.name}`, expr: selector });
  }
  return out;
}

describe('monitoring and probes against a real server', () => {
  let server: TestServer;
  let scraped: string;
  let names: Set<string>;
  const base = assembleBase();

  before(async () => {
    const baseConfig = JSON.parse((findObject<{ data: Record<string, string> }>(base, 'ConfigMap').data)['config.json']!) as { metricsPublic: boolean };
    server = await startTestServer({ metricsPublic: baseConfig.metricsPublic, apiKeys: [KEY] });
    for (const calibration of [undefined, { act: true }]) {
      const res = await fetch(`${server.url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
        body: JSON.stringify({ prompt: 'Once upon a time', max_tokens: 8, temperature: 0, ...(calibration ? { calibration } : {}) }),
      });
      assert.equal(res.status, 200, await res.text());
    }
    // As the ServiceMonitor scrapes: no key.
    const res = await fetch(`${server.url}/metrics`);
    assert.equal(res.status, 200, 'the base configuration lets the ServiceMonitor scrape without a key');
    scraped = await res.text();
    names = sampleNames(scraped);
  });
  after(() => server?.close());

  it('the probe paths of the Deployment answer 200 without a key, and the API itself needs one', async () => {
    const deployment = findObject<{ spec: { template: { spec: { containers: { name: string; [k: string]: unknown }[] } } } }>(base, 'Deployment');
    const main = deployment.spec.template.spec.containers.find((c) => c.name === 'attune')!;
    for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
      const path = (main[probe] as { httpGet: { path: string } }).httpGet.path;
      const res = await fetch(`${server.url}${path}`);
      assert.equal(res.status, 200, `${probe} ${path}`);
    }
    assert.equal((await fetch(`${server.url}/v1/models`)).status, 401);
  });

  it('every metric the Grafana dashboard queries is in the scrape, and every query parses', () => {
    const queries = dashboardQueries();
    assert.ok(queries.length > 20, `read ${queries.length} queries`);
    const used = new Set<string>();
    for (const { where, expr } of queries) {
      const found = metricNames(expr, where);
      assert.ok(found.length > 0, `${where}: ${expr} selects no metric by name`);
      for (const name of found) {
        used.add(name);
        assert.ok(names.has(name), `${where}: ${name} is not exported by the server (scraped: ${[...names].filter((n) => n.startsWith('attune:')).join(', ')})`);
      }
    }
    for (const stem of ['time_to_first_token_seconds_bucket', 'inter_token_latency_seconds_bucket', 'num_requests_waiting', 'num_requests_running', 'kv_cache_usage_perc', 'request_failure_total', 'calibration_requests_total', 'calibration_seconds_bucket', 'act_sinks_detected_bucket']) {
      assert.ok(used.has(`attune:${stem}`), `the dashboard shows attune:${stem}`);
    }
  });

  it('one dashboard row per calibrator, repeated over the calibrators the server reports', () => {
    const repeated = dashboard.panels.filter((p) => p.type === 'row' && p.repeat === 'calibrator');
    assert.equal(repeated.length, 1);
    const calibrators = new Set([...scraped.matchAll(/^attune:calibration_requests_total\{[^}]*calibrator="([^"]+)"/gm)].map((m) => m[1]!));
    assert.ok(calibrators.has('act'), `the scrape names the calibrators the row repeats over (${[...calibrators].join(', ')})`);
  });

  it('the Prometheus Adapter rule selects an exported series and maps it to the HPA metric', () => {
    const values = readYamlDocuments(join(repoRoot, 'deploy', 'prometheus-adapter', 'values.yaml'))[0] as {
      rules: { custom: { seriesQuery: string; metricsQuery: string; resources: { overrides: Record<string, { resource: string }> } }[] };
    };
    for (const rule of values.rules.custom) {
      const [series] = metricNames(rule.seriesQuery, 'adapter seriesQuery');
      assert.ok(series && names.has(series), `the adapter's series ${series} is exported`);
      const query = rule.metricsQuery.replace('<<.Series>>', series).replace('<<.LabelMatchers>>', 'namespace="ns",pod=~"a|b"').replace('<<.GroupBy>>', 'pod');
      assert.deepEqual(metricNames(query, 'adapter metricsQuery'), [series]);
      assert.deepEqual(Object.values(rule.resources.overrides).map((o) => o.resource).sort(), ['namespace', 'pod']);
    }
  });
});
