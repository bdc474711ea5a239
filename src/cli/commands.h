// Registration of each `moerun` subcommand with the CLI11 application.
#pragma once

namespace CLI {
class App;
}

namespace moerun::cli {

// `moerun inspect FILE`: metadata, tensor table and totals of a GGUF file.
void add_inspect_command(CLI::App& app);
// `moerun synth`: writes a synthetic Qwen3-Next GGUF with random weights and the real tokenizer.
void add_synth_command(CLI::App& app);
// `moerun check`: machine features, measured bandwidths (stored as the calibration), model fit.
void add_check_command(CLI::App& app);
// `moerun bench`: end-to-end speed of the spec/bench.md scenarios or a custom run.
void add_bench_command(CLI::App& app);
// `moerun tokenize` / `moerun detokenize` / `moerun render-chat`.
void add_tokenizer_commands(CLI::App& app);
// `moerun convert HF_DIR -o FILE.gguf`: a Hugging Face checkpoint to GGUF.
void add_convert_command(CLI::App& app);
// `moerun generate`: text from a prompt, streamed, with speed on stderr.
void add_generate_command(CLI::App& app);
// `moerun chat`: an interactive conversation in the terminal.
void add_chat_command(CLI::App& app);
// `moerun profile`: expert usage per layer on a prompt file, saved as a profile (and trace).
void add_profile_command(CLI::App& app);
// `moerun serve`: the OpenAI-compatible HTTP server.
void add_serve_command(CLI::App& app);

}  // namespace moerun::cli
