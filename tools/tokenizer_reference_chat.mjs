// Development reference for chat renderings: renders every case of a chat-cases file (one JSON object
// per line: messages, tools, add_generation_prompt, enable_thinking) with the chat_template of
// tokenizer_config.json using the npm package @huggingface/jinja, one JSON string per line. The
// authoritative renderings come from tools/make_tokenizer_fixtures.py (Python transformers).
//
// Usage: node tools/tokenizer_reference_chat.mjs NODE_MODULES_DIR TOKENIZER_DIR CASES.jsonl OUT.jsonl
//   (install the package first: cd /tmp/tokref && npm install @huggingface/jinja)
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";

const [nodeModules, tokDir, casesPath, outPath] = process.argv.slice(2);
if (!outPath) {
  console.error("usage: node tokenizer_reference_chat.mjs NODE_MODULES_DIR TOKENIZER_DIR CASES OUT");
  process.exit(2);
}
const require = createRequire(path.join(path.resolve(nodeModules), "x.js"));
const { Template } = require("@huggingface/jinja");
const config = JSON.parse(fs.readFileSync(path.join(tokDir, "tokenizer_config.json"), "utf8"));
const template = new Template(config.chat_template);
const lines = fs.readFileSync(casesPath, "utf8").split("\n").filter((l) => l.length > 0);
const out = lines.map((l) => {
  const c = JSON.parse(l);
  const vars = { messages: c.messages, add_generation_prompt: c.add_generation_prompt ?? true };
  if (c.tools !== undefined) vars.tools = c.tools;
  if (c.enable_thinking !== undefined) vars.enable_thinking = c.enable_thinking;
  return JSON.stringify(template.render(vars));
});
fs.writeFileSync(outPath, out.join("\n") + "\n");
console.error(`wrote ${out.length} renderings to ${outPath}`);
