// The CPU's marketing name, which identifies the machine a measurement was made on.
#pragma once

#include <string>

namespace moerun {

// The CPU's "model name" from /proc/cpuinfo, or "unknown CPU".
std::string cpu_model_name();

}  // namespace moerun
