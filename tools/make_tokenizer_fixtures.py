#!/usr/bin/env python3
"""Authoritative tokenizer fixtures from Hugging Face: token ids with `tokenizers` and chat
renderings with transformers' apply_chat_template, for the same inputs as the committed fixtures.

Usage (no network needed):
  python3 tools/make_tokenizer_fixtures.py TOKENIZER_DIR OUT_DIR \
      [--corpus tests/fixtures/tokenizer/corpus.jsonl] \
      [--chat-cases tests/fixtures/tokenizer/chat_cases.jsonl]

TOKENIZER_DIR holds tokenizer.json and tokenizer_config.json. Writes OUT_DIR/ids.jsonl (one JSON
array of ids per corpus line, special tokens parsed, no BOS/EOS added) and OUT_DIR/chat_rendered.jsonl
(one JSON string per case), the formats of tests/fixtures/tokenizer/. Also prints how many lines
differ from the committed fixtures, if those exist next to the inputs.
"""
import argparse
import json
import os
import sys


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write_jsonl(path, values):
    with open(path, "w", encoding="utf-8") as f:
        for v in values:
            f.write(json.dumps(v, ensure_ascii=False) + "\n")


def compare(new_values, old_path, what):
    if not os.path.exists(old_path):
        return
    old = read_jsonl(old_path)
    diff = [i + 1 for i, (a, b) in enumerate(zip(new_values, old)) if a != b]
    if len(old) != len(new_values):
        print(f"{what}: committed file has {len(old)} lines, new has {len(new_values)}")
    print(f"{what}: {len(diff)} of {len(new_values)} lines differ from {old_path}"
          + (f" (lines {diff[:50]})" if diff else ""))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    fixtures = os.path.join(os.path.dirname(here), "tests", "fixtures", "tokenizer")
    ap = argparse.ArgumentParser()
    ap.add_argument("tokenizer_dir")
    ap.add_argument("out_dir")
    ap.add_argument("--corpus", default=os.path.join(fixtures, "corpus.jsonl"))
    ap.add_argument("--chat-cases", default=os.path.join(fixtures, "chat_cases.jsonl"))
    args = ap.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)

    import tokenizers
    import transformers
    print(f"tokenizers {tokenizers.__version__}, transformers {transformers.__version__}")

    # Ids: the Rust tokenizer itself, and transformers' fast tokenizer as a cross-check.
    tok = tokenizers.Tokenizer.from_file(os.path.join(args.tokenizer_dir, "tokenizer.json"))
    corpus = read_jsonl(args.corpus)
    ids = [tok.encode(s, add_special_tokens=False).ids for s in corpus]
    hf = transformers.AutoTokenizer.from_pretrained(args.tokenizer_dir)
    ids_tf = [hf.encode(s, add_special_tokens=False) for s in corpus]
    bad = [i + 1 for i, (a, b) in enumerate(zip(ids, ids_tf)) if a != b]
    print(f"tokenizers vs transformers: {len(bad)} lines differ {bad[:20]}")
    write_jsonl(os.path.join(args.out_dir, "ids.jsonl"), ids)
    compare(ids, os.path.join(os.path.dirname(args.corpus), "ids.jsonl"), "ids")

    # Chat renderings.
    rendered = []
    for c in read_jsonl(args.chat_cases):
        kwargs = {}
        if "enable_thinking" in c:
            kwargs["enable_thinking"] = c["enable_thinking"]
        rendered.append(hf.apply_chat_template(
            c["messages"], tools=c.get("tools"), tokenize=False,
            add_generation_prompt=c.get("add_generation_prompt", True), **kwargs))
    write_jsonl(os.path.join(args.out_dir, "chat_rendered.jsonl"), rendered)
    compare(rendered, os.path.join(os.path.dirname(args.chat_cases), "chat_rendered.jsonl"), "chat")
    print(f"wrote {args.out_dir}/ids.jsonl ({len(ids)} lines) and chat_rendered.jsonl "
          f"({len(rendered)} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
