#include "server/openapi.h"

namespace moerun::server {
namespace {

using json = nlohmann::ordered_json;

json ref(const char* name) {
  return {{"$ref", std::string("#/components/schemas/") + name}};
}

json obj(json properties, json required = json::array()) {
  json o = {{"type", "object"}, {"properties", std::move(properties)}};
  if (!required.empty()) o["required"] = std::move(required);
  return o;
}

json num(const char* description) {
  return {{"type", "number"}, {"description", description}};
}
json integer(const char* description) {
  return {{"type", "integer"}, {"description", description}};
}
json str(const char* description) {
  return {{"type", "string"}, {"description", description}};
}
json boolean(const char* description) {
  return {{"type", "boolean"}, {"description", description}};
}

json json_content(json schema) {
  return {{"application/json", {{"schema", std::move(schema)}}}};
}

// Adds the error responses every API operation may give to `responses`.
void add_errors(json& responses) {
  const json e = {{"description", "An error in OpenAI's shape"},
                  {"content", json_content(ref("Error"))}};
  for (const char* status : {"400", "401", "404", "413", "503"}) responses[status] = e;
}

// A POST operation taking and returning JSON (or server-sent events when streaming).
json post(const char* summary, const char* request, const char* response, bool streams) {
  json ok = {{"description",
              streams ? "The result, or server-sent events when stream is true" : "The result"},
             {"content", json_content(ref(response))}};
  if (streams) ok["content"]["text/event-stream"] = {{"schema", {{"type", "string"}}}};
  json responses = {{"200", ok}};
  add_errors(responses);
  return {{"post",
           {{"summary", summary},
            {"requestBody", {{"required", true}, {"content", json_content(ref(request))}}},
            {"responses", responses}}}};
}

json get(const char* summary, json content, bool secured = true) {
  json op = {{"summary", summary},
             {"responses", {{"200", {{"description", "OK"}, {"content", std::move(content)}}}}}};
  if (!secured) op["security"] = json::array();
  return {{"get", op}};
}

json sampling_properties() {
  return {{"temperature", num("0..2; 0 is greedy (default 0.7)")},
          {"top_p", num("(0, 1] (default 0.8)")},
          {"top_k", integer("0 turns it off (default 20); an extension")},
          {"min_p", num("0..1 (default 0); an extension")},
          {"presence_penalty", num("-2..2")},
          {"frequency_penalty", num("-2..2")},
          {"repetition_penalty", num("Hugging Face's penalty; an extension")},
          {"seed", integer("Same seed, same output, alone or batched with other requests")},
          {"max_tokens", integer("Tokens to generate at most (default: the rest of the context)")},
          {"max_completion_tokens", integer("Same as max_tokens; takes precedence")},
          {"stop",
           {{"oneOf", json::array({{{"type", "string"}},
                                   {{"type", "array"}, {"items", {{"type", "string"}}}}})}}},
          {"n", integer("Only 1 is supported")},
          {"stream", boolean("Server-sent events")},
          {"stream_options", obj({{"include_usage", boolean("A last chunk with usage")}})},
          {"timeout", num("Seconds before the request is abandoned; an extension")}};
}

json schemas() {
  json s;
  s["Error"] = obj({{"error", obj({{"message", str("What is wrong")},
                                   {"type", str("OpenAI's error type")},
                                   {"param", {{"type", "string"}, {"nullable", true}}},
                                   {"code", {{"type", "string"}, {"nullable", true}}}},
                                  json::array({"message", "type"}))}},
                   json::array({"error"}));
  s["Usage"] = obj({{"prompt_tokens", integer("Prompt tokens")},
                    {"completion_tokens", integer("Generated tokens")},
                    {"total_tokens", integer("Both")}});
  s["Timings"] = obj({{"queue_ms", num("Waiting for a sequence")},
                      {"prefill_ms", num("Prompt processing")},
                      {"decode_ms", num("First to last token")},
                      {"prefill_tokens_per_second", num("Prompt speed")},
                      {"decode_tokens_per_second", num("Generation speed")}});
  s["ToolCall"] =
      obj({{"id", str("Call id")},
           {"type", str("function")},
           {"function",
            obj({{"name", str("Function name")}, {"arguments", str("Arguments as JSON text")}})}});
  s["Message"] =
      obj({{"role",
            {{"type", "string"},
             {"enum", json::array({"system", "developer", "user", "assistant", "tool"})}}},
           {"content",
            {{"oneOf", json::array({{{"type", "string"}},
                                    {{"type", "array"}, {"items", {{"type", "object"}}}}})},
             {"nullable", true}}},
           {"tool_calls", {{"type", "array"}, {"items", ref("ToolCall")}}},
           {"tool_call_id", str("For role tool")},
           {"reasoning_content", str("The thinking of an assistant message")}},
          json::array({"role"}));
  json chat = sampling_properties();
  chat["model"] = str("The served model's id (GET /v1/models)");
  chat["messages"] = {{"type", "array"}, {"items", ref("Message")}};
  chat["tools"] = {{"type", "array"}, {"items", {{"type", "object"}}}};
  chat["tool_choice"] = str("auto or none");
  chat["logprobs"] = boolean("Log-probabilities of the output tokens");
  chat["top_logprobs"] = integer("0..20 alternatives per token");
  chat["enable_thinking"] = boolean("Qwen3 thinking switch; an extension");
  s["ChatCompletionRequest"] = obj(chat, json::array({"model", "messages"}));
  s["ChatCompletion"] =
      obj({{"id", str("chatcmpl-...")},
           {"object", str("chat.completion")},
           {"created", integer("Unix time")},
           {"model", str("Model id")},
           {"choices",
            {{"type", "array"},
             {"items", obj({{"index", integer("0")},
                            {"message", ref("Message")},
                            {"logprobs", {{"type", "object"}, {"nullable", true}}},
                            {"finish_reason", str("stop, length or tool_calls")}})}}},
           {"usage", ref("Usage")},
           {"timings", ref("Timings")}});
  json completion = sampling_properties();
  completion["model"] = str("The served model's id");
  completion["prompt"] = {
      {"oneOf",
       json::array({{{"type", "string"}}, {{"type", "array"}, {"items", {{"type", "integer"}}}}})}};
  completion["logprobs"] = integer("0..20 alternatives per token");
  s["CompletionRequest"] = obj(completion, json::array({"model", "prompt"}));
  s["Completion"] = obj({{"id", str("cmpl-...")},
                         {"object", str("text_completion")},
                         {"created", integer("Unix time")},
                         {"model", str("Model id")},
                         {"choices",
                          {{"type", "array"},
                           {"items", obj({{"index", integer("0")},
                                          {"text", str("Generated text")},
                                          {"logprobs", {{"type", "object"}, {"nullable", true}}},
                                          {"finish_reason", str("stop or length")}})}}},
                         {"usage", ref("Usage")}});
  json generate = sampling_properties();
  generate["prompt"] = completion["prompt"];
  generate["logprobs"] = boolean("Log-probabilities of the output tokens");
  generate["top_logprobs"] = integer("0..20 alternatives per token");
  s["GenerateRequest"] = obj(generate, json::array({"prompt"}));
  s["GenerateResponse"] = obj({{"id", str("gen-...")},
                               {"text", str("Generated text")},
                               {"tokens", {{"type", "array"}, {"items", {{"type", "integer"}}}}},
                               {"finish_reason", str("stop or length")},
                               {"usage", ref("Usage")},
                               {"timings", ref("Timings")}});
  s["Model"] = obj({{"id", str("Model id")},
                    {"object", str("model")},
                    {"created", integer("Unix time")},
                    {"owned_by", str("moerun")}});
  s["ModelList"] =
      obj({{"object", str("list")}, {"data", {{"type", "array"}, {"items", ref("Model")}}}});
  json counters = obj({{"routed", integer("(token, expert) assignments")},
                       {"gpu_hits", integer("Served from VRAM")},
                       {"hit_rate", num("gpu_hits / routed")},
                       {"cpu_experts", integer("Expert evaluations on the CPU")},
                       {"copied_experts", integer("Experts copied to VRAM")},
                       {"bytes_copied", integer("Bytes copied to VRAM")},
                       {"bytes_cpu_read", integer("Expert bytes the CPU read")},
                       {"predicted", integer("Chosen experts that were predicted")},
                       {"prediction_checked", integer("Chosen experts of predicted steps")},
                       {"prefetch_accuracy", num("predicted / prediction_checked")},
                       {"resident", integer("Experts in the VRAM cache now")}});
  json layer = counters;
  layer["properties"]["layer"] = integer("MoE layer index");
  layer["properties"]["usage"] = {{"type", "array"}, {"items", {{"type", "integer"}}}};
  s["ExpertStats"] = obj({{"available", boolean("Whether the model keeps statistics")},
                          {"n_layers", integer("MoE layers")},
                          {"n_experts", integer("Experts per layer")},
                          {"tokens", integer("Tokens through the MoE layers")},
                          {"hit_rate", num("VRAM hit rate over all layers")},
                          {"prefetch_accuracy", num("Over all layers")},
                          {"totals", counters},
                          {"layers", {{"type", "array"}, {"items", layer}}}});
  json categories = {{"type", "object"}, {"additionalProperties", {{"type", "integer"}}}};
  s["Memory"] = obj({{"host", obj({{"rss_bytes", integer("Resident set")},
                                   {"peak_rss_bytes", integer("Its high-water mark")},
                                   {"model_file_bytes", integer("Mapped model file")},
                                   {"expert_store_bytes", integer("Routed experts in host memory")},
                                   {"pinned_bytes", integer("Page-locked memory")},
                                   {"sequence_state_bytes", integer("KV and recurrent states")},
                                   {"categories", categories}})},
                     {"vram", obj({{"budget_bytes", integer("0 without a GPU")},
                                   {"used_bytes", integer("0 without a GPU")},
                                   {"categories", categories}})}});
  return s;
}

}  // namespace

nlohmann::ordered_json openapi_document(const std::string& version) {
  json doc;
  doc["openapi"] = "3.0.3";
  doc["info"] = {{"title", "moerun"},
                 {"version", version},
                 {"description",
                  "OpenAI-compatible API of moerun, plus its own endpoints for watching "
                  "offloaded experts and memory."}};
  json paths;
  paths["/health"] = get("Liveness: {\"status\": \"ok\"}",
                         json_content(obj({{"status", str("ok or shutting_down")}})), false);
  paths["/v1/models"] = get("The served model", json_content(ref("ModelList")));
  paths["/v1/chat/completions"] =
      post("Chat completion (OpenAI)", "ChatCompletionRequest", "ChatCompletion", true);
  paths["/v1/completions"] =
      post("Text completion (OpenAI)", "CompletionRequest", "Completion", true);
  paths["/api/v1/generate"] = post("Generate from a prompt: text, tokens, usage and timings",
                                   "GenerateRequest", "GenerateResponse", true);
  paths["/api/v1/chat/completions"] = post("Chat completion (same as /v1/chat/completions)",
                                           "ChatCompletionRequest", "ChatCompletion", true);
  paths["/api/v1/expert-stats"] =
      get("Routed-expert statistics per layer", json_content(ref("ExpertStats")));
  paths["/api/v1/memory"] =
      get("Memory use: host and VRAM by category", json_content(ref("Memory")));
  paths["/metrics"] =
      get("Prometheus metrics", {{"text/plain", {{"schema", {{"type", "string"}}}}}});
  paths["/openapi.json"] =
      get("This document", {{"application/json", {{"schema", {{"type", "object"}}}}}}, false);
  paths["/docs"] = get("Interactive documentation of this API",
                       {{"text/html", {{"schema", {{"type", "string"}}}}}}, false);
  doc["paths"] = paths;
  doc["components"] = {
      {"schemas", schemas()},
      {"securitySchemes", {{"bearerAuth", {{"type", "http"}, {"scheme", "bearer"}}}}}};
  doc["security"] = json::array({{{"bearerAuth", json::array()}}});
  return doc;
}

}  // namespace moerun::server
