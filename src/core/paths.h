// Well-known places on disk: moerun's cache folder and the tokenizer files the setup script
// fetches.
#pragma once

#include <string>

namespace moerun {

// moerun's cache folder: $MOERUN_CACHE, else $XDG_CACHE_HOME/moerun, else $HOME/.cache/moerun.
std::string cache_dir();

// Folder holding the Qwen3 tokenizer.json and tokenizer_config.json fetched by scripts/setup.sh.
std::string default_tokenizer_dir();

}  // namespace moerun
