// Helpers shared by the server's node tests and the load script: command-line flags, starting
// `moerun serve` on a free port, reading server-sent events, process memory, percentiles.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { join } from 'node:path';

// Flags as { name: value } from ["--name", "value", "--flag"] (a flag without value is true).
export function parseFlags(argv) {
  const flags = {};
  for (let i = 0; i < argv.length; i++) {
    if (!argv[i].startsWith('--')) continue;
    const name = argv[i].slice(2);
    const next = argv[i + 1];
    if (next === undefined || next.startsWith('--')) flags[name] = true;
    else flags[name] = argv[++i];
  }
  return flags;
}

// The folder where scripts/setup.sh installs the npm packages.
export function nodeModulesDir() {
  const cache = process.env.MOERUN_CACHE || join(homedir(), '.cache', 'moerun');
  return join(cache, 'npm', 'node_modules');
}

// The `openai` npm package's client class; throws with a hint when it is not installed.
export function loadOpenAI(dir = nodeModulesDir()) {
  const require = createRequire(join(dir, 'moerun-loader.js'));
  try {
    const mod = require('openai');
    return mod.default ?? mod.OpenAI ?? mod;
  } catch (e) {
    throw new Error(`the openai npm package is not in ${dir} (run scripts/setup.sh): ${e.message}`);
  }
}

// Starts `moerun serve` with `args` on a free port; resolves to { url, proc, pid, output, stop }
// once the server prints its address.
export function startServer(moerun, args = [], { timeoutMs = 180000 } = {}) {
  return new Promise((resolve, reject) => {
    const proc = spawn(moerun, ['serve', '--port', '0', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    let done = false;
    const timer = setTimeout(() => {
      if (done) return;
      done = true;
      proc.kill('SIGKILL');
      reject(new Error(`moerun serve did not start in ${timeoutMs} ms:\n${output}`));
    }, timeoutMs);
    const onData = (chunk) => {
      output += chunk.toString();
      const m = output.match(/at (http:\/\/[^\s]+) - OpenAI API/);
      if (m && !done) {
        done = true;
        clearTimeout(timer);
        const server = {
          url: m[1],
          proc,
          pid: proc.pid,
          get output() {
            return output;
          },
          exited: new Promise((res) => proc.on('exit', (code, signal) => res({ code, signal }))),
          async stop(signal = 'SIGTERM') {
            if (proc.exitCode !== null || proc.signalCode !== null) return server.exited;
            proc.kill(signal);
            return server.exited;
          },
        };
        resolve(server);
      }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    proc.on('exit', (code) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      reject(new Error(`moerun serve exited with ${code}:\n${output}`));
    });
  });
}

// Yields the data of each server-sent event of a fetch Response ("[DONE]" included, as a string).
export async function* sseData(response) {
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of response.body) {
    buffer += decoder.decode(chunk, { stream: true });
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = event
        .split('\n')
        .filter((l) => l.startsWith('data: '))
        .map((l) => l.slice(6))
        .join('\n');
      if (data) yield data === '[DONE]' ? data : JSON.parse(data);
    }
  }
}

// Resident memory of process `pid` in bytes (VmRSS of /proc/PID/status).
export function rssBytes(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = status.match(/VmRSS:\s+(\d+) kB/);
  return m ? Number(m[1]) * 1024 : 0;
}

// The p-th percentile (0..100) of numbers, by nearest rank; NaN for none.
export function percentile(values, p) {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank];
}

// Parses Prometheus text format 0.0.4; returns Map name -> [{ labels, value }] and checks that
// every sample belongs to a family with a TYPE line. Throws on a malformed line.
export function parsePrometheus(text) {
  const types = new Map();
  const samples = new Map();
  const sampleRe = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? ([-+]?([0-9.]+([eE][-+]?[0-9]+)?|Inf|NaN))$/;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('# HELP ')) continue;
    if (line.startsWith('# TYPE ')) {
      const [, , name, type] = line.split(' ');
      if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(type)) {
        throw new Error(`bad TYPE line: ${line}`);
      }
      types.set(name, type);
      continue;
    }
    if (line.startsWith('#')) continue;
    const m = line.match(sampleRe);
    if (!m) throw new Error(`bad sample line: ${line}`);
    const labels = {};
    if (m[3]) {
      for (const pair of m[3].split(',')) {
        const lm = pair.match(/^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"$/);
        if (!lm) throw new Error(`bad label in: ${line}`);
        labels[lm[1]] = lm[2];
      }
    }
    if (!types.has(m[1])) throw new Error(`sample without TYPE: ${line}`);
    if (!samples.has(m[1])) samples.set(m[1], []);
    samples.get(m[1]).push({ labels, value: Number(m[4]) });
  }
  return samples;
}
