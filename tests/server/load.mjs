// Load test and concurrency benchmark of `moerun serve`: N clients each stream generations back to
// back for a fixed time. Reports failed requests, aggregate decode tokens/s, per-stream
// inter-token latency p50/p95, time to first token, and the server's RSS before, after a warm-up
// and after the load.
//
//   node tests/server/load.mjs --moerun BUILD/moerun [--serve "-m default -t 2"] --clients 32
//        --duration 10 [--max-tokens 32] [--warmup 3] [--check] [--json]
//   node tests/server/load.mjs --url http://127.0.0.1:8000 [--api-key KEY] [--pid PID] ...
//
// --check exits with status 1 when a request failed or the RSS did not come back (within 10% +
// 16 MiB of its level after the warm-up). Requests use /api/v1/generate with stream=true, which
// sends one event per token, so the inter-token times are exact.
import { parseFlags, percentile, rssBytes, sseData, startServer } from './harness.mjs';

const f = parseFlags(process.argv.slice(2));
const clients = Number(f.clients ?? 8);
const duration = Number(f.duration ?? 10);
const warmup = Number(f.warmup ?? 3);
const maxTokens = Number(f['max-tokens'] ?? 32);
const promptWords = Number(f['prompt-words'] ?? 20);
const mib = (b) => (b / 1048576).toFixed(1);

let server = null;
let url = f.url;
let pid = f.pid ? Number(f.pid) : null;
if (f.moerun) {
  const serveArgs = (typeof f.serve === 'string' ? f.serve : '-m default').split(/\s+/).filter(Boolean);
  server = await startServer(f.moerun, ['--max-seqs', String(Math.max(clients, 1)), ...serveArgs]);
  url = server.url;
  pid = server.pid;
}
if (!url) throw new Error('give --moerun PATH or --url URL');
const headers = { 'Content-Type': 'application/json' };
if (f['api-key']) headers.Authorization = `Bearer ${f['api-key']}`;

const rss = () => (pid ? rssBytes(pid) : 0);
const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

// One streamed generation; returns its timings, or throws.
async function oneRequest(client, n) {
  const start = performance.now();
  const words = Array.from({ length: promptWords }, (_, i) => `w${(client * 31 + n * 7 + i) % 97}`);
  const response = await fetch(`${url}/api/v1/generate`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ prompt: `Client ${client} request ${n}: ${words.join(' ')}`,
                           max_tokens: maxTokens, temperature: 0.8, seed: client * 100000 + n,
                           stream: true }),
  });
  if (response.status !== 200) throw new Error(`HTTP ${response.status}: ${await response.text()}`);
  const times = [];
  let done = null;
  for await (const d of sseData(response)) {
    if (d === '[DONE]') break;
    if (d.error) throw new Error(`error event: ${d.error.message}`);
    if (d.done) done = d;
    else times.push(performance.now());
  }
  if (!done) throw new Error('the stream ended without its final event');
  if (done.usage.completion_tokens !== times.length) {
    throw new Error(`${times.length} token events but usage says ${done.usage.completion_tokens}`);
  }
  const gaps = [];
  for (let i = 1; i < times.length; i++) gaps.push(times[i] - times[i - 1]);
  return { ttft: times.length ? times[0] - start : NaN, gaps, tokens: times.length,
           end: performance.now() };
}

// Runs `clients` loops for `seconds`; collects everything.
async function phase(seconds) {
  const stopAt = performance.now() + seconds * 1000;
  const result = { ok: 0, failed: 0, errors: [], tokens: 0, gaps: [], ttft: [], start: performance.now() };
  await Promise.all(Array.from({ length: clients }, async (_, c) => {
    for (let n = 0; performance.now() < stopAt; n++) {
      try {
        const r = await oneRequest(c, n);
        result.ok++;
        result.tokens += r.tokens;
        result.gaps.push(...r.gaps);
        result.ttft.push(r.ttft);
      } catch (e) {
        result.failed++;
        if (result.errors.length < 5) result.errors.push(String(e.message ?? e));
      }
    }
  }));
  result.wall = (performance.now() - result.start) / 1000;
  return result;
}

const rssBefore = rss();
if (warmup > 0) await phase(warmup);
await sleep(1000);
const rssWarm = rss();
const main = await phase(duration);
await sleep(2000);
const rssAfter = rss();

const report = {
  clients,
  duration_s: duration,
  max_tokens: maxTokens,
  requests_ok: main.ok,
  requests_failed: main.failed,
  errors: main.errors,
  generated_tokens: main.tokens,
  aggregate_tokens_per_s: main.tokens / main.wall,
  inter_token_ms_p50: percentile(main.gaps, 50),
  inter_token_ms_p95: percentile(main.gaps, 95),
  ttft_ms_p50: percentile(main.ttft, 50),
  ttft_ms_p95: percentile(main.ttft, 95),
  rss_before_bytes: rssBefore,
  rss_after_warmup_bytes: rssWarm,
  rss_after_load_bytes: rssAfter,
};
const rssBack = !pid || rssAfter <= rssWarm * 1.1 + 16 * 1048576;
if (f.json) {
  console.log(JSON.stringify(report, null, 2));
} else {
  console.log(`clients ${clients}, ${duration} s, max_tokens ${maxTokens}: ${main.ok} requests ok, ` +
              `${main.failed} failed`);
  console.log(`aggregate ${report.aggregate_tokens_per_s.toFixed(1)} tokens/s; inter-token p50 ` +
              `${report.inter_token_ms_p50.toFixed(2)} ms, p95 ${report.inter_token_ms_p95.toFixed(2)} ms; ` +
              `TTFT p50 ${report.ttft_ms_p50.toFixed(1)} ms, p95 ${report.ttft_ms_p95.toFixed(1)} ms`);
  if (pid) {
    console.log(`server RSS: ${mib(rssBefore)} MiB before, ${mib(rssWarm)} MiB after warm-up, ` +
                `${mib(rssAfter)} MiB after the load`);
  }
  for (const e of main.errors) console.log(`error: ${e}`);
}
if (server) {
  const { code } = await server.stop('SIGTERM');
  if (code !== 0) {
    console.log(`the server exited with ${code}:\n${server.output}`);
    process.exitCode = 1;
  }
}
if (f.check && (main.failed > 0 || main.ok === 0 || !rssBack)) {
  console.log(`check failed: ${main.failed} failed requests, RSS back to its level: ${rssBack}`);
  process.exitCode = 1;
}
