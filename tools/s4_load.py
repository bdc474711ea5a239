#!/usr/bin/env python3
"""S4 of spec/bench.md against a running `moerun serve`: N concurrent streaming completions.

Prints aggregate decode tokens/s (tokens after each stream's first, over the time from the first
first-token to the last token) and each stream's inter-token latency p95. Standard library only,
so it runs on machines without node (the GPU machine).

    python3 tools/s4_load.py --url http://127.0.0.1:8000 --streams 8 --max-tokens 128
"""
import argparse
import http.client
import json
import threading
import time
import urllib.parse


def stream_once(url, model, prompt, max_tokens, seed, out):
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    body = json.dumps({"model": model, "prompt": prompt, "max_tokens": max_tokens,
                       "stream": True, "temperature": 0, "seed": seed})
    conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    if resp.status != 200:
        out["error"] = f"HTTP {resp.status}: {resp.read()[:200]!r}"
        return
    times = []
    for raw in resp:
        line = raw.decode("utf-8", "replace").strip()
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            break
        chunk = json.loads(data)
        if chunk.get("choices") and chunk["choices"][0].get("text") is not None:
            times.append(time.perf_counter())
    out["times"] = times


def served_model(url):
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    conn.request("GET", "/v1/models")
    return json.loads(conn.getresponse().read())["data"][0]["id"]


def p95(values):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(round(0.95 * (len(v) - 1))))]


def run(url, model, streams, max_tokens):
    results = [{} for _ in range(streams)]
    threads = [threading.Thread(target=stream_once,
                                args=(url, model, f"Story number {i}: once upon a time", max_tokens,
                                      i + 1, results[i]))
               for i in range(streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    errors = [r["error"] for r in results if "error" in r]
    if errors:
        raise SystemExit(f"{len(errors)} request(s) failed: {errors[0]}")
    firsts = [r["times"][0] for r in results if r["times"]]
    lasts = [r["times"][-1] for r in results if r["times"]]
    tokens = sum(max(0, len(r["times"]) - 1) for r in results)
    span = max(lasts) - min(firsts)
    itl = [p95([b - a for a, b in zip(r["times"], r["times"][1:])]) * 1e3 for r in results]
    return tokens / span if span > 0 else float("nan"), itl


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default="http://127.0.0.1:8000")
    ap.add_argument("--streams", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--max-tokens", type=int, default=128)
    a = ap.parse_args()
    for n in a.streams:
        tok_s, itl = run(a.url, served_model(a.url), n, a.max_tokens)
        print(f"streams {n}: aggregate decode {tok_s:.1f} tok/s; ITL p95 per stream (ms): "
              + ", ".join(f"{x:.1f}" for x in itl))


if __name__ == "__main__":
    main()
