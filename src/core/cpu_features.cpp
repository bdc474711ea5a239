#include "core/cpu_features.h"

#include <cpuid.h>

#include <cstdint>

namespace moerun {
namespace {

// Registers returned by one cpuid query.
struct CpuidRegs {
  uint32_t eax = 0, ebx = 0, ecx = 0, edx = 0;
};

// cpuid(leaf, subleaf); all zero when the leaf is beyond the CPU's maximum.
CpuidRegs cpuid(uint32_t leaf, uint32_t subleaf) {
  CpuidRegs r;
  if (static_cast<uint32_t>(__get_cpuid_max(leaf & 0x80000000u, nullptr)) < leaf) return r;
  __cpuid_count(leaf, subleaf, r.eax, r.ebx, r.ecx, r.edx);
  return r;
}

// XCR0: which register states the OS saves and restores on context switches.
uint64_t read_xcr0() {
  uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

bool bit(uint32_t reg, int n) {
  return ((reg >> n) & 1u) != 0;
}

CpuFeatures detect() {
  CpuFeatures f;
  const CpuidRegs l1 = cpuid(1, 0);
  const bool osxsave = bit(l1.ecx, 27);
  const bool avx = bit(l1.ecx, 28);
  if (!osxsave || !avx) return f;
  const uint64_t xcr0 = read_xcr0();
  const bool os_avx = (xcr0 & 0x6u) == 0x6u;                 // SSE + AVX (YMM) state
  const bool os_avx512 = os_avx && (xcr0 & 0xe0u) == 0xe0u;  // opmask, ZMM_Hi256, Hi16_ZMM
  const bool os_amx = (xcr0 & 0x60000u) == 0x60000u;         // XTILECFG + XTILEDATA
  if (!os_avx) return f;

  const CpuidRegs l7 = cpuid(7, 0);
  const CpuidRegs l7s1 = cpuid(7, 1);
  f.fma = bit(l1.ecx, 12);
  f.f16c = bit(l1.ecx, 29);
  f.avx2 = bit(l7.ebx, 5);
  if (os_avx512) {
    f.avx512f = bit(l7.ebx, 16);
    f.avx512bw = f.avx512f && bit(l7.ebx, 30);
    f.avx512vl = f.avx512f && bit(l7.ebx, 31);
    f.avx512vnni = f.avx512f && bit(l7.ecx, 11);
    f.avx512bf16 = f.avx512f && bit(l7s1.eax, 5);
  }
  // AMX-TILE (edx 24) and AMX-INT8 (edx 25), with the tile state enabled by the OS.
  f.amx = os_amx && bit(l7.edx, 24) && bit(l7.edx, 25);
  return f;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

}  // namespace moerun
