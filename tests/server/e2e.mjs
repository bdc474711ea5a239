// End-to-end tests of `moerun serve` with the official `openai` npm client (and plain fetch for
// what the client hides): chat and completions, streaming, stop strings, limits, seeds, tool
// calls, logprobs, every error status, the API key, 16 concurrent streams against solo runs,
// disconnects, moerun's own endpoints, and a clean shutdown.
// Usage: node tests/server/e2e.mjs --moerun BUILD/moerun
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  loadOpenAI,
  parseFlags,
  parsePrometheus,
  sseData,
  startServer,
} from './harness.mjs';

const flags = parseFlags(process.argv.slice(2));
if (!flags.moerun) throw new Error('usage: node e2e.mjs --moerun PATH_TO_MOERUN');
const KEY = 'sk-moerun-test-0123456789';
const OpenAI = loadOpenAI();
const T = { timeout: 300000 };

let server;
let client;
let model;

// fetch against the main server with the key (unless `key` is given, or null for none).
function api(path, { method = 'GET', body, key = KEY, headers = {} } = {}) {
  const h = { ...headers };
  if (key !== null) h.Authorization = `Bearer ${key}`;
  if (body !== undefined && !(body instanceof Uint8Array) && typeof body !== 'string') {
    body = JSON.stringify(body);
    h['Content-Type'] = 'application/json';
  }
  return fetch(server.url + path, { method, body, headers: h });
}

async function expectError(response, status, check = () => {}) {
  const text = await response.text();
  assert.equal(response.status, status, text);
  const j = JSON.parse(text);
  assert.equal(typeof j.error, 'object', text);
  assert.equal(typeof j.error.message, 'string');
  assert.equal(typeof j.error.type, 'string');
  assert.ok('param' in j.error && 'code' in j.error, text);
  check(j.error, response);
  return j.error;
}

const userMessages = (text) => [
  { role: 'system', content: 'You are terse.' },
  { role: 'user', content: text },
];

async function chatText(params) {
  const r = await client.chat.completions.create({ model, ...params });
  return r.choices[0].message.content ?? '';
}

async function streamChat(params) {
  const stream = await client.chat.completions.create({ model, stream: true, ...params });
  let text = '';
  const chunks = [];
  for await (const chunk of stream) {
    chunks.push(chunk);
    text += chunk.choices[0]?.delta?.content ?? '';
  }
  return { text, chunks };
}

before(async () => {
  server = await startServer(flags.moerun, [
    '-m', 'default', '--api-key', KEY, '--max-seqs', '16', '--ctx', '2048', '-t', '2',
  ]);
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: KEY, maxRetries: 0, timeout: 240000 });
  model = (await client.models.list()).data[0].id;
});

after(async () => {
  // A clean exit: with the sanitizer build, leaks or errors found at exit make the code non-zero.
  if (!server) return;
  const { code } = await server.stop('SIGTERM');
  assert.equal(code, 0, server.output);
});

describe('OpenAI API', () => {
  test('models and health', T, async () => {
    const list = await client.models.list();
    assert.equal(list.data.length, 1);
    assert.equal(list.data[0].object, 'model');
    assert.equal(list.data[0].owned_by, 'moerun');
    const one = await client.models.retrieve(model);
    assert.equal(one.id, model);
    const health = await api('/health', { key: null });
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { status: 'ok' });
  });

  test('chat completion: shape, usage, max_tokens and finish_reason length', T, async () => {
    const r = await client.chat.completions.create({
      model, messages: userMessages('Hello there'), max_tokens: 7, seed: 1, temperature: 0.8,
    });
    assert.match(r.id, /^chatcmpl-/);
    assert.equal(r.object, 'chat.completion');
    assert.equal(r.model, model);
    assert.ok(Math.abs(r.created - Date.now() / 1000) < 600);
    assert.equal(r.choices.length, 1);
    const c = r.choices[0];
    assert.equal(c.index, 0);
    assert.equal(c.message.role, 'assistant');
    assert.equal(typeof c.message.content, 'string');
    assert.equal(c.finish_reason, 'length');
    assert.equal(r.usage.completion_tokens, 7);
    assert.ok(r.usage.prompt_tokens > 5);
    assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + 7);
    const r2 = await client.chat.completions.create({
      model, messages: userMessages('Hello there'), max_completion_tokens: 3, seed: 1,
    });
    assert.equal(r2.usage.completion_tokens, 3);
  });

  test('seed reproducibility, and streaming equals non-streaming', T, async () => {
    const params = { messages: userMessages('Tell me a story'), max_tokens: 24, seed: 42,
                     temperature: 1.0, top_p: 0.95, top_k: 50, min_p: 0.01 };
    const a = await chatText(params);
    const b = await chatText(params);
    assert.equal(a, b);
    assert.ok(a.length > 0);
    const c = await chatText({ ...params, seed: 43 });
    assert.notEqual(c, a);
    const { text, chunks } = await streamChat({ ...params, stream_options: { include_usage: true } });
    assert.equal(text, a);
    assert.equal(chunks[0].object, 'chat.completion.chunk');
    assert.equal(chunks[0].choices[0].delta.role, 'assistant');
    const withFinish = chunks.filter((k) => k.choices[0]?.finish_reason);
    assert.equal(withFinish.length, 1);
    assert.equal(withFinish[0].choices[0].finish_reason, 'length');
    const last = chunks[chunks.length - 1];
    assert.deepEqual(last.choices, []);
    assert.equal(last.usage.completion_tokens, 24);
    // Penalties are accepted and change the sampling.
    const pen = await client.chat.completions.create({
      model, ...params, presence_penalty: 1.5, frequency_penalty: 1.0 });
    assert.equal(pen.usage.completion_tokens, 24);
  });

  test('stop strings (string and array, streaming and not)', T, async () => {
    const params = { messages: userMessages('Count to twenty'), max_tokens: 40, seed: 7,
                     temperature: 0.9 };
    const full = await chatText(params);
    assert.ok(full.length > 12, full);
    // A stop string taken from the middle of the output cuts it at its first occurrence.
    const chars = [...full];
    const stop = chars.slice(6, 9).join('');
    const expected = full.slice(0, full.indexOf(stop));
    const r = await client.chat.completions.create({ model, ...params, stop });
    assert.equal(r.choices[0].message.content, expected);
    assert.equal(r.choices[0].finish_reason, 'stop');
    assert.ok(r.usage.completion_tokens < 40);
    const { text, chunks } = await streamChat({ ...params, stop: ['\u0000never', stop] });
    assert.equal(text, expected);
    assert.equal(chunks.find((k) => k.choices[0]?.finish_reason).choices[0].finish_reason, 'stop');
  });

  test('completions: string and token prompts, streaming, logprobs', T, async () => {
    const r = await client.completions.create({ model, prompt: 'The capital of France is',
                                                max_tokens: 6, seed: 3, temperature: 0.7 });
    assert.match(r.id, /^cmpl-/);
    assert.equal(r.object, 'text_completion');
    assert.equal(r.choices[0].finish_reason, 'length');
    assert.equal(r.usage.completion_tokens, 6);
    let streamed = '';
    let finish = null;
    const stream = await client.completions.create({ model, prompt: 'The capital of France is',
                                                     max_tokens: 6, seed: 3, temperature: 0.7,
                                                     stream: true });
    for await (const chunk of stream) {
      streamed += chunk.choices[0]?.text ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    assert.equal(streamed, r.choices[0].text);
    assert.equal(finish, 'length');
    const ids = await client.completions.create({ model, prompt: [785, 6722, 315, 9625, 374],
                                                  max_tokens: 4, temperature: 0 });
    assert.equal(ids.usage.prompt_tokens, 5);
    const lp = await client.completions.create({ model, prompt: 'Hi', max_tokens: 5,
                                                 temperature: 0, logprobs: 3 });
    const l = lp.choices[0].logprobs;
    assert.equal(l.tokens.length, 5);
    assert.equal(l.token_logprobs.length, 5);
    assert.equal(l.top_logprobs.length, 5);
    assert.equal(l.text_offset.length, 5);
    for (let i = 0; i < 5; i++) {
      assert.ok(l.token_logprobs[i] <= 0);
      assert.equal(Object.keys(l.top_logprobs[i]).length > 0, true);
      // Greedy: the chosen token is the most likely one.
      const best = Math.max(...Object.values(l.top_logprobs[i]));
      assert.ok(Math.abs(best - l.token_logprobs[i]) < 1e-5);
    }
  });

  test('chat logprobs and top_logprobs', T, async () => {
    const r = await client.chat.completions.create({
      model, messages: userMessages('Hi'), max_tokens: 6, seed: 5, logprobs: true, top_logprobs: 4,
    });
    const content = r.choices[0].logprobs.content;
    assert.equal(content.length, 6);
    for (const entry of content) {
      assert.equal(typeof entry.token, 'string');
      assert.ok(entry.logprob <= 0);
      assert.ok(Array.isArray(entry.bytes));
      assert.equal(entry.top_logprobs.length, 4);
      for (let i = 1; i < 4; i++) {
        assert.ok(entry.top_logprobs[i - 1].logprob >= entry.top_logprobs[i].logprob);
      }
      assert.ok(entry.logprob <= entry.top_logprobs[0].logprob + 1e-6);
    }
    const { chunks } = await streamChat({ messages: userMessages('Hi'), max_tokens: 6, seed: 5,
                                          logprobs: true, top_logprobs: 2 });
    const streamed = chunks.flatMap((k) => k.choices[0]?.logprobs?.content ?? []);
    assert.equal(streamed.length, 6);
    assert.deepEqual(streamed.map((e) => e.token), content.map((e) => e.token));
  });

  test('tool-call round trip: tools, assistant tool_calls and tool messages', T, async () => {
    const tools = [{ type: 'function', function: { name: 'get_weather',
      description: 'Weather for a city',
      parameters: { type: 'object', properties: { city: { type: 'string' } },
                    required: ['city'] } } }];
    const messages = [
      { role: 'user', content: 'Weather in Paris?' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function',
        function: { name: 'get_weather', arguments: '{"city": "Paris"}' } }] },
      { role: 'tool', tool_call_id: 'call_1', content: '{"temp_c": 21}' },
    ];
    const r = await client.chat.completions.create({ model, messages, tools, max_tokens: 8,
                                                     seed: 9, tool_choice: 'auto' });
    assert.ok(['stop', 'length', 'tool_calls'].includes(r.choices[0].finish_reason));
    const m = r.choices[0].message;
    if (m.tool_calls) {
      for (const call of m.tool_calls) {
        assert.equal(call.type, 'function');
        assert.equal(typeof call.function.arguments, 'string');
      }
    }
    // The tools make the prompt longer than the same conversation without them.
    const without = await client.chat.completions.create({ model, messages, max_tokens: 1 });
    assert.ok(r.usage.prompt_tokens > without.usage.prompt_tokens + 20);
    const none = await client.chat.completions.create({ model, messages, tools, max_tokens: 1,
                                                        tool_choice: 'none' });
    assert.equal(none.usage.prompt_tokens, without.usage.prompt_tokens);
    await assert.rejects(
      client.chat.completions.create({ model, messages, tools, tool_choice: 'required' }),
      (e) => e.status === 400);
  });

  test('16 concurrent seeded streams each equal their solo run', T, async () => {
    const params = (i) => ({ messages: userMessages(`Request number ${i}: ${'word '.repeat(i * 7)}`),
                             max_tokens: 20, seed: 1000 + i, temperature: 1.0 });
    const solo = [];
    for (let i = 0; i < 16; i++) solo.push(await chatText(params(i)));
    const together = await Promise.all(
      Array.from({ length: 16 }, (_, i) => streamChat(params(i)).then((r) => r.text)));
    for (let i = 0; i < 16; i++) assert.equal(together[i], solo[i], `stream ${i}`);
    const metrics = parsePrometheus(await (await api('/metrics')).text());
    assert.ok(metrics.get('moerun_requests_total')[0].value >= 32);
  });
});

describe('errors and limits', () => {
  test('401: missing or wrong API key; public paths need none', T, async () => {
    await expectError(await api('/v1/models', { key: null }), 401,
                      (e) => assert.equal(e.code, 'invalid_api_key'));
    await expectError(await api('/v1/models', { key: 'sk-wrong' }), 401);
    await expectError(await api('/metrics', { key: 'x' }), 401);
    const bad = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'nope', maxRetries: 0 });
    await assert.rejects(bad.models.list(), (e) => e.status === 401);
    assert.equal((await api('/openapi.json', { key: null })).status, 200);
    assert.equal((await api('/docs', { key: null })).status, 200);
    const xkey = await fetch(`${server.url}/v1/models`, { headers: { 'X-Api-Key': KEY } });
    assert.equal(xkey.status, 200);
  });

  test('400: bad JSON, bad values, n > 1, invalid UTF-8, bad messages', T, async () => {
    await expectError(await api('/v1/chat/completions', { method: 'POST', body: '{"model": ',
                                                          headers: { 'Content-Type': 'application/json' } }), 400);
    await expectError(await api('/v1/chat/completions', { method: 'POST',
      body: { model, messages: userMessages('x'), temperature: 5 } }), 400,
                      (e) => assert.equal(e.param, 'temperature'));
    await expectError(await api('/v1/chat/completions', { method: 'POST',
      body: { model, messages: userMessages('x'), n: 2 } }), 400, (e) => assert.equal(e.param, 'n'));
    await expectError(await api('/v1/chat/completions', { method: 'POST',
      body: { model, messages: [] } }), 400);
    await expectError(await api('/v1/chat/completions', { method: 'POST',
      body: { model, messages: [{ role: 'wizard', content: 'x' }] } }), 400);
    await expectError(await api('/v1/completions', { method: 'POST',
      body: { model, prompt: [1, 2, 99999999] } }), 400);
    const invalid = new Uint8Array([...new TextEncoder().encode('{"model": "'), 0xff, 0xfe,
                                    ...new TextEncoder().encode('", "prompt": "x"}')]);
    await expectError(await api('/v1/completions', { method: 'POST', body: invalid,
                                                     headers: { 'Content-Type': 'application/json' } }),
                      400, (e) => assert.match(e.message, /UTF-8/));
    await assert.rejects(client.chat.completions.create({ model, messages: userMessages('x'),
                                                          top_p: 0 }), (e) => e.status === 400);
  });

  test('unknown fields are ignored', T, async () => {
    const r = await api('/v1/chat/completions', { method: 'POST', body: {
      model, messages: userMessages('x'), max_tokens: 2, some_future_field: { a: 1 }, user: 'u1' } });
    assert.equal(r.status, 200);
  });

  test('404: unknown route and unknown model', T, async () => {
    await expectError(await api('/v1/nothing-here'), 404);
    await expectError(await api('/v1/chat/completions', { method: 'POST',
      body: { model: 'gpt-nonexistent', messages: userMessages('x') } }), 404,
                      (e) => assert.equal(e.code, 'model_not_found'));
    await assert.rejects(client.models.retrieve('other-model'), (e) => e.status === 404);
  });

  test('400 context_length_exceeded for a prompt longer than the context', T, async () => {
    await expectError(await api('/v1/chat/completions', { method: 'POST',
      body: { model, messages: userMessages('lorem ipsum '.repeat(2000)) } }), 400,
                      (e) => assert.equal(e.code, 'context_length_exceeded'));
  });

  test('413, 503 with Retry-After, timeouts: a small server', T, async () => {
    const small = await startServer(flags.moerun, ['-m', 'default', '--max-seqs', '1',
      '--max-queue', '1', '--max-body', '2048', '-t', '1', '--ctx', '512']);
    try {
      const post = (body) => fetch(`${small.url}/v1/completions`, { method: 'POST',
        headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
      const smallModel = (await (await fetch(`${small.url}/v1/models`)).json()).data[0].id;
      const big = await post({ model: smallModel, prompt: 'x'.repeat(4000) });
      await expectError(big, 413);
      // One running, one queued: the rest are refused with 503 and Retry-After.
      const long = { model: smallModel, prompt: 'Go', max_tokens: 400, temperature: 0 };
      const responses = await Promise.all(Array.from({ length: 5 }, () => post(long)));
      const statuses = responses.map((r) => r.status).sort();
      assert.ok(statuses.filter((s) => s === 503).length >= 1, String(statuses));
      for (const r of responses) {
        if (r.status === 503) {
          assert.equal(r.headers.get('retry-after'), '1');
          await expectError(r, 503);
        } else {
          assert.equal(r.status, 200);
          await r.text();
        }
      }
      // A request that cannot finish in its timeout ends with 504.
      const t = await post({ model: smallModel, prompt: 'Go', max_tokens: 500, timeout: 0.05 });
      await expectError(t, 504);
    } finally {
      await small.stop('SIGKILL');
    }
  });
});

describe('moerun endpoints', () => {
  test('/api/v1/generate: text, tokens, usage and timings', T, async () => {
    const r = await api('/api/v1/generate', { method: 'POST',
      body: { prompt: 'Once upon a time', max_tokens: 8, seed: 11, temperature: 0.8 } });
    assert.equal(r.status, 200);
    const j = await r.json();
    assert.equal(typeof j.text, 'string');
    assert.equal(j.tokens.length, 8);
    assert.equal(j.usage.completion_tokens, 8);
    assert.equal(j.finish_reason, 'length');
    for (const k of ['queue_ms', 'prefill_ms', 'decode_ms', 'prefill_tokens_per_second',
                     'decode_tokens_per_second']) {
      assert.equal(typeof j.timings[k], 'number', k);
    }
    const s = await api('/api/v1/generate', { method: 'POST',
      body: { prompt: 'Once upon a time', max_tokens: 8, seed: 11, temperature: 0.8, stream: true } });
    let text = '';
    let last;
    for await (const d of sseData(s)) {
      if (d === '[DONE]') break;
      if (d.done) last = d; else text += d.text;
    }
    assert.equal(text, j.text);
    assert.deepEqual(last.tokens, j.tokens);
  });

  test('/api/v1/chat/completions equals /v1/chat/completions', T, async () => {
    const body = { model, messages: userMessages('Same?'), max_tokens: 6, seed: 77 };
    const a = await (await api('/api/v1/chat/completions', { method: 'POST', body })).json();
    const b = await client.chat.completions.create(body);
    assert.equal(a.choices[0].message.content, b.choices[0].message.content);
  });

  test('/api/v1/expert-stats and /api/v1/memory shapes', T, async () => {
    const s = await (await api('/api/v1/expert-stats')).json();
    assert.equal(s.available, true);
    assert.ok(s.n_layers > 0);
    assert.equal(s.layers.length, s.n_layers);
    assert.ok(s.totals.routed > 0);
    for (const layer of s.layers) {
      assert.equal(typeof layer.hit_rate, 'number');
      assert.equal(typeof layer.prefetch_accuracy, 'number');
      assert.equal(typeof layer.bytes_copied, 'number');
      assert.equal(typeof layer.resident, 'number');
      assert.equal(layer.usage.length, s.n_experts);
    }
    const m = await (await api('/api/v1/memory')).json();
    assert.ok(m.host.rss_bytes > 0);
    assert.ok(m.host.model_file_bytes > 0);
    assert.ok(m.host.expert_store_bytes > 0);
    assert.ok(m.host.sequence_state_bytes > 0);
    assert.equal(m.vram.budget_bytes, 0);
    assert.equal(typeof m.vram.categories, 'object');
  });

  test('/metrics is Prometheus text with the expected families', T, async () => {
    const r = await api('/metrics');
    assert.match(r.headers.get('content-type'), /^text\/plain/);
    const m = parsePrometheus(await r.text());
    for (const name of ['moerun_requests_total', 'moerun_prompt_tokens_total',
                        'moerun_generated_tokens_total', 'moerun_tokens_per_second',
                        'moerun_queue_depth', 'moerun_active_sequences', 'moerun_expert_hit_rate',
                        'moerun_vram_used_bytes', 'moerun_host_rss_bytes',
                        'moerun_http_responses_total']) {
      assert.ok(m.has(name), name);
    }
    assert.ok(m.get('moerun_generated_tokens_total')[0].value > 0);
    assert.ok(m.get('moerun_http_responses_total').some((s) => s.labels.status === '401' && s.value > 0));
  });

  test('/openapi.json is a valid OpenAPI 3 document of every endpoint; /docs serves it', T, async () => {
    const doc = await (await api('/openapi.json', { key: null })).json();
    assert.match(doc.openapi, /^3\.\d+\.\d+$/);
    assert.equal(typeof doc.info.title, 'string');
    assert.equal(typeof doc.info.version, 'string');
    for (const p of ['/v1/chat/completions', '/v1/completions', '/v1/models', '/health',
                     '/api/v1/generate', '/api/v1/chat/completions', '/api/v1/expert-stats',
                     '/api/v1/memory', '/metrics', '/openapi.json', '/docs']) {
      assert.ok(doc.paths[p], p);
    }
    // Every operation has responses; every $ref resolves.
    const methods = ['get', 'post', 'put', 'delete', 'patch'];
    for (const [p, item] of Object.entries(doc.paths)) {
      for (const [m, op] of Object.entries(item)) {
        assert.ok(methods.includes(m), `${p} ${m}`);
        assert.ok(Object.keys(op.responses).length > 0, `${p} ${m}`);
      }
    }
    const refs = [];
    const walk = (v) => {
      if (Array.isArray(v)) v.forEach(walk);
      else if (v && typeof v === 'object') {
        for (const [k, x] of Object.entries(v)) (k === '$ref' ? refs.push(x) : walk(x));
      }
    };
    walk(doc);
    assert.ok(refs.length > 5);
    for (const ref of refs) {
      const parts = ref.replace(/^#\//, '').split('/');
      let node = doc;
      for (const part of parts) node = node?.[part];
      assert.ok(node, `unresolved ${ref}`);
    }
    const page = await api('/docs', { key: null });
    assert.match(page.headers.get('content-type'), /text\/html/);
    const html = await page.text();
    assert.match(html, /openapi\.json/);
    if (html.includes('swagger-ui-bundle.js')) {
      const js = await api('/docs/swagger-ui-bundle.js', { key: null });
      assert.equal(js.status, 200);
      assert.ok((await js.text()).length > 100000);
    }
  });

  test('a client that disconnects cancels its request at once', T, async () => {
    const before = parsePrometheus(await (await api('/metrics')).text());
    const cancelled = (m) => m.get('moerun_requests_finished_total')
      .find((s) => s.labels.reason === 'cancelled').value;
    const controller = new AbortController();
    const r = await api('/v1/chat/completions', { method: 'POST', body: {
      model, messages: userMessages('Go on forever'), max_tokens: 1500, stream: true },
      headers: {} });
    const reader = r.body.getReader();
    await reader.read();
    await reader.cancel();
    controller.abort();
    let after;
    for (let i = 0; i < 100; i++) {
      after = parsePrometheus(await (await api('/metrics')).text());
      if (after.get('moerun_active_sequences')[0].value === 0 && cancelled(after) > cancelled(before)) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    assert.equal(after.get('moerun_active_sequences')[0].value, 0);
    assert.equal(cancelled(after), cancelled(before) + 1);
  });

  test('SIGTERM: requests in flight finish, then the server exits cleanly', T, async () => {
    const s = await startServer(flags.moerun, ['-m', 'default', '-t', '1']);
    const id = (await (await fetch(`${s.url}/v1/models`)).json()).data[0].id;
    const pending = fetch(`${s.url}/v1/completions`, { method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ model: id, prompt: 'Hello', max_tokens: 30 }) });
    await new Promise((res) => setTimeout(res, 100));
    const exited = s.stop('SIGTERM');
    const r = await pending;
    assert.equal(r.status, 200);
    assert.equal((await r.json()).usage.completion_tokens, 30);
    const { code } = await exited;
    assert.equal(code, 0, s.output);
  });
});
