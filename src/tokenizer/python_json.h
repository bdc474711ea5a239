// JSON text exactly as Python's json.dumps(x, ensure_ascii=False) writes it: the `tojson` filter of
// transformers' chat templates (", " and ": " separators, keys in insertion order, Python float
// repr).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace moerun {

// json.dumps(value, ensure_ascii=False) of a value parsed into an ordered_json (key order kept).
std::string python_json_dumps(const nlohmann::ordered_json& value);

// Python's repr() of a float, e.g. 1.0 -> "1.0", 1e16 -> "1e+16", 1e-5 -> "1e-05".
std::string python_float_repr(double v);

}  // namespace moerun
