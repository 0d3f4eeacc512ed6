// The wings' metrics (top/api/metrics-wings.ts) rendered from status snapshots: names, types,
// labels and values in the Prometheus text format, the ack latency histogram's buckets, and the
// Grafana dashboard (docs/grafana-dashboard.json) using only metric names the code exports.
import { test } from 'vitest';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Exposition } from '../../top/api/metrics.js';
import { renderFarmWing, renderMirrorWing } from '../../top/api/metrics-wings.js';
import type { MirrorDetail } from '../../mirror/status.js';
import type { FarmStatus } from '../../farm/runtime.js';
import { repoRoot } from '../helpers/paths.js';

const latency = { boundsSec: [0.0001, 0.001, 0.01], cumulative: [3, 7, 9, 10], sumSec: 0.042, count: 10 };

function mirrorDetail(over: Partial<MirrorDetail> = {}): MirrorDetail {
  return {
    link: false, dirs: ['/srv/db', '/srv/wal'], dirtyBytes: 5_000_000, reintegrating: 'source',
    reintegration: { running: true, phase: 'copy,copy', full: false, bytesToGo: 3_000_000, bytesCopied: 2_000_000, bytesSent: 2_100_000,
      entriesToGo: 2, entriesDone: 5, passes: 1, rateBytesPerSec: 1_000_000, startedAtMs: 1, finishedAtMs: null, error: null, etaMs: 3000 },
    reintegrationTotals: { done: 2, failed: 1, bytesCopied: 10_000_000 },
    resyncMaxBytesPerS: 1_048_576,
    verify: { last: { atMs: 1_700_000_000_000, scheduled: true, identical: false, differences: 4, entriesCompared: 10, bytesCompared: 100, durationMs: 1500, error: null },
      counters: { identical: 3, diverged: 1, failed: 0 }, everyMs: 21_600_000 },
    links: [
      { connected: false, lostReason: 'x', tampered: 0, mode: 'on-sync', ackLevel: 'received', bytesSent: 123, ackedOps: 45, ackLatency: latency },
      { connected: false, lostReason: 'x', tampered: 0, mode: 'on-sync', ackLevel: 'received', bytesSent: 7, ackedOps: 1, ackLatency: { ...latency, cumulative: [0, 0, 0, 0], count: 0, sumSec: 0 } },
    ],
    ...over,
  } as MirrorDetail;
}

const farmStatus: FarmStatus = {
  active: true, vip: '10.0.0.100', vips: ['10.0.0.100'], ifname: 'eth0', members: ['n1', 'n3'], ownedBuckets: 600, takeoverBuckets: 120, buckets: 1024,
  load: { n1: 600, n3: 424 }, takeovers: 2, takeoverBucketsTotal: 300,
};

function lines(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const l of text.split('\n')) {
    if (l === '' || l.startsWith('#')) continue;
    const i = l.lastIndexOf(' ');
    out.set(l.slice(0, i), Number(l.slice(i + 1)));
  }
  return out;
}

test('mirror: link, dirty bytes, bytes and ops replicated, the ack latency histogram, reintegration progress and totals, verify', () => {
  const x = new Exposition();
  renderMirrorWing(x, 'db', mirrorDetail());
  const text = x.text();
  const v = lines(text);
  assert.equal(v.get('croft_mirror_link_up{module="db"}'), 0);
  assert.equal(v.get('croft_mirror_dirty_bytes{module="db"}'), 5_000_000);
  assert.equal(v.get('croft_mirror_replicated_bytes_total{module="db",dir="/srv/db"}'), 123);
  assert.equal(v.get('croft_mirror_replicated_ops_total{module="db",dir="/srv/wal"}'), 1);
  assert.match(text, /# TYPE croft_mirror_ack_latency_seconds histogram/);
  assert.equal(v.get('croft_mirror_ack_latency_seconds_bucket{module="db",dir="/srv/db",le="0.0001"}'), 3);
  assert.equal(v.get('croft_mirror_ack_latency_seconds_bucket{module="db",dir="/srv/db",le="0.01"}'), 9);
  assert.equal(v.get('croft_mirror_ack_latency_seconds_bucket{module="db",dir="/srv/db",le="+Inf"}'), 10);
  assert.equal(v.get('croft_mirror_ack_latency_seconds_sum{module="db",dir="/srv/db"}'), 0.042);
  assert.equal(v.get('croft_mirror_ack_latency_seconds_count{module="db",dir="/srv/db"}'), 10);
  // One HELP/TYPE per metric, every dir's lines under it.
  assert.equal(text.match(/# TYPE croft_mirror_ack_latency_seconds /g)?.length, 1);
  assert.equal(v.get('croft_mirror_reintegration_running{module="db"}'), 1);
  assert.equal(v.get('croft_mirror_reintegration_bytes_to_go{module="db"}'), 3_000_000);
  assert.equal(v.get('croft_mirror_reintegration_rate_bytes_per_second{module="db"}'), 1_000_000);
  assert.equal(v.get('croft_mirror_reintegration_eta_seconds{module="db"}'), 3);
  assert.equal(v.get('croft_mirror_reintegration_bytes_total{module="db"}'), 12_000_000, 'finished runs plus the running one');
  assert.equal(v.get('croft_mirror_reintegrations_total{module="db",result="done"}'), 2);
  assert.equal(v.get('croft_mirror_reintegrations_total{module="db",result="failed"}'), 1);
  assert.equal(v.get('croft_mirror_resync_max_bytes_per_second{module="db"}'), 1_048_576);
  assert.equal(v.get('croft_mirror_verify_last_result{module="db"}'), 0);
  assert.equal(v.get('croft_mirror_verify_last_differences{module="db"}'), 4);
  assert.equal(v.get('croft_mirror_verify_last_timestamp_seconds{module="db"}'), 1_700_000_000);
  assert.equal(v.get('croft_mirror_verify_last_duration_seconds{module="db"}'), 1.5);
  assert.equal(v.get('croft_mirror_verifies_total{module="db",result="identical"}'), 3);
  assert.equal(v.get('croft_mirror_verifies_total{module="db",result="diverged"}'), 1);
  assert.equal(v.get('croft_mirror_verify_every_seconds{module="db"}'), 21_600);
});

test('mirror, nothing running: no progress, ETA -1, verify never ran -1; a target\'s reintegration is not this node\'s copy', () => {
  const x = new Exposition();
  renderMirrorWing(x, 'db', mirrorDetail({ link: true, dirtyBytes: null, reintegrating: 'target', verify: { last: null, counters: { identical: 0, diverged: 0, failed: 0 }, everyMs: null }, resyncMaxBytesPerS: null }));
  const v = lines(x.text());
  assert.equal(v.get('croft_mirror_link_up{module="db"}'), 1);
  assert.equal(v.get('croft_mirror_dirty_bytes{module="db"}'), 0);
  assert.equal(v.get('croft_mirror_reintegration_running{module="db"}'), 0);
  assert.equal(v.get('croft_mirror_reintegration_bytes_to_go{module="db"}'), 0);
  assert.equal(v.get('croft_mirror_reintegration_eta_seconds{module="db"}'), -1);
  assert.equal(v.get('croft_mirror_reintegration_bytes_total{module="db"}'), 10_000_000);
  assert.equal(v.get('croft_mirror_verify_last_result{module="db"}'), -1);
  assert.equal(v.get('croft_mirror_verify_every_seconds{module="db"}'), 0);
  assert.equal(v.get('croft_mirror_resync_max_bytes_per_second{module="db"}'), 0);
});

test('farm: buckets owned per node, connections, takeovers', () => {
  const x = new Exposition();
  renderFarmWing(x, 'web', farmStatus, 37);
  const v = lines(x.text());
  assert.equal(v.get('croft_farm_buckets_owned{module="web",node="n1"}'), 600);
  assert.equal(v.get('croft_farm_buckets_owned{module="web",node="n3"}'), 424);
  assert.equal(v.get('croft_farm_buckets{module="web"}'), 1024);
  assert.equal(v.get('croft_farm_members{module="web"}'), 2);
  assert.equal(v.get('croft_farm_connections{module="web"}'), 37);
  assert.equal(v.get('croft_farm_takeovers_total{module="web"}'), 2);
  assert.equal(v.get('croft_farm_takeover_buckets_total{module="web"}'), 300);
  assert.equal(v.get('croft_farm_takeover_buckets{module="web"}'), 120);
  assert.equal(v.get('croft_farm_active{module="web"}'), 1);
  const none = new Exposition();
  renderFarmWing(none, 'web', farmStatus, null);
  assert.doesNotMatch(none.text(), /croft_farm_connections/, 'left out when /proc/net/tcp cannot be read');
});

/** Every metric name the daemon's /metrics can export, from the renderers' sources. */
function exportedNames(): Set<string> {
  const names = new Set<string>();
  for (const f of ['top/api/metrics.ts', 'top/api/metrics-wings.ts']) {
    const src = fs.readFileSync(path.join(repoRoot, f), 'utf8');
    for (const m of src.matchAll(/\.add\('(croft_[a-z0-9_]+)'/g)) names.add(m[1]!);
    for (const m of src.matchAll(/\.histogram\('(croft_[a-z0-9_]+)'/g)) {
      for (const s of ['_bucket', '_sum', '_count']) names.add(m[1]! + s);
    }
  }
  return names;
}

test('the scan of the sources finds what the wing renderers really export', () => {
  const x = new Exposition();
  renderMirrorWing(x, 'db', mirrorDetail());
  renderFarmWing(x, 'web', farmStatus, 1);
  const rendered = new Set([...lines(x.text()).keys()].map((k) => k.replace(/\{.*$/, '')));
  const scanned = exportedNames();
  const wingNames = [...scanned].filter((n) => n.startsWith('croft_mirror_') || n.startsWith('croft_farm_'));
  for (const n of rendered) assert.ok(scanned.has(n), `${n} rendered but not found by the scan`);
  const src = fs.readFileSync(path.join(repoRoot, 'top/api/metrics-wings.ts'), 'utf8');
  for (const n of wingNames) {
    if (!src.includes(`'${n.replace(/_(bucket|sum|count)$/, '')}'`)) continue; // metrics.ts's own mirror metrics
    assert.ok(rendered.has(n), `${n} is in metrics-wings.ts but the fixture did not render it`);
  }
});

test('docs/grafana-dashboard.json is valid JSON whose panels query only metrics the daemon exports', () => {
  const dash = JSON.parse(fs.readFileSync(path.join(repoRoot, 'docs/grafana-dashboard.json'), 'utf8')) as { panels: { title: string; targets?: { expr: string }[] }[] };
  const exported = exportedNames();
  const used = new Set<string>();
  let targets = 0;
  for (const p of dash.panels) {
    for (const t of p.targets ?? []) {
      targets++;
      // Metric names: croft_ identifiers (label values are quoted, PromQL functions are not croft_).
      for (const m of t.expr.replace(/"[^"]*"/g, '""').matchAll(/\b(croft_[a-z0-9_]+)\b/g)) {
        used.add(m[1]!);
        assert.ok(exported.has(m[1]!), `panel "${p.title}" uses ${m[1]}, which the daemon does not export`);
      }
    }
  }
  assert.ok(targets >= 10, `${targets} queries`);
  // The dashboard covers what issue 12 part 8 lists.
  for (const n of ['croft_mirror_link_up', 'croft_mirror_ack_latency_seconds_bucket', 'croft_mirror_replicated_bytes_total', 'croft_mirror_replicated_ops_total',
    'croft_mirror_dirty_bytes', 'croft_mirror_reintegration_bytes_total', 'croft_mirror_reintegration_rate_bytes_per_second', 'croft_mirror_reintegration_eta_seconds',
    'croft_mirror_verify_last_result', 'croft_farm_buckets_owned', 'croft_farm_connections', 'croft_farm_takeovers_total']) {
    assert.ok(used.has(n), `the dashboard has no panel on ${n}`);
  }
});
