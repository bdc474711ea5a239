// moerun: the command-line front end; each subcommand lives in its own cmd_*.cpp file.
#include <cstdio>
#include <exception>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "core/error.h"

int main(int argc, char** argv) {
  CLI::App app{"moerun: run huge Mixture-of-Experts models on one machine"};
  app.set_version_flag("--version", "moerun 0.1.0");
  app.require_subcommand(1);
  moerun::cli::add_inspect_command(app);
  moerun::cli::add_synth_command(app);
  moerun::cli::add_check_command(app);
  moerun::cli::add_bench_command(app);
  moerun::cli::add_tokenizer_commands(app);
  moerun::cli::add_convert_command(app);
  moerun::cli::add_generate_command(app);
  moerun::cli::add_chat_command(app);
  moerun::cli::add_profile_command(app);
  moerun::cli::add_serve_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const moerun::Error& e) {
    fmt::print(stderr, "moerun: error: {}\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "moerun: error: {}\n", e.what());
    return 1;
  }
  return 0;
}
