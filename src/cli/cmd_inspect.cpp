// `moerun inspect FILE [--all]`: header, metadata, tensor table and totals of a GGUF file.
#include <cstdio>
#include <memory>
#include <string>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "cli/default_model.h"
#include "io/gguf_describe.h"
#include "io/gguf_file.h"

namespace moerun::cli {

void add_inspect_command(CLI::App& app) {
  struct InspectArgs {
    std::string path;
    bool all = false;
  };
  auto args = std::make_shared<InspectArgs>();
  CLI::App* cmd =
      app.add_subcommand("inspect", "Show the metadata, tensors and totals of a GGUF file");
  cmd->add_option("file", args->path, "GGUF file (\"default\": the embedded tiny model)")
      ->required();
  cmd->add_flag("--all", args->all, "Show every array element and whole strings");
  cmd->callback([args] {
    const std::unique_ptr<GgufFile> file = GgufFile::open(resolve_model_path(args->path));
    const std::string text = describe_gguf(*file, args->all);
    std::fwrite(text.data(), 1, text.size(), stdout);
  });
}

}  // namespace moerun::cli
