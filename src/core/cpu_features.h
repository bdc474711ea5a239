// What the CPU we run on can do, read once with cpuid.
#pragma once

namespace moerun {

// Instruction-set extensions relevant to the CPU kernels.
struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512vnni = false;
  bool avx512bf16 = false;
  bool amx = false;
};

// The features of this CPU (cached after the first call).
const CpuFeatures& cpu_features();

}  // namespace moerun
