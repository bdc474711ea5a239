// libFuzzer target: SafetensorsFile::parse on arbitrary bytes must either succeed or throw
// moerun::Error; every tensor it accepts must be readable in full.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>

#include "core/error.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // An exact-size copy so that ASan catches any read past the end.
  std::unique_ptr<uint8_t[]> copy(new uint8_t[size ? size : 1]);
  if (size) std::memcpy(copy.get(), data, size);
  std::unique_ptr<moerun::SafetensorsFile> file;
  try {
    file = moerun::SafetensorsFile::parse(copy.get(), size, "fuzz.safetensors");
  } catch (const moerun::Error&) {
    return 0;
  }
  volatile float sink = 0;
  for (const moerun::SafetensorsTensor& t : file->tensors()) {
    if (t.nbytes) sink = sink + static_cast<float>(t.data[0] + t.data[t.nbytes - 1]);
    if (moerun::st_dtype_is_float(t.dtype) && t.numel > 0) {
      float first = 0, last = 0;
      moerun::convert_to_f32(t, 0, 1, &first);
      moerun::convert_to_f32(t, t.numel - 1, 1, &last);
      sink = sink + first + last;
    }
  }
  (void)sink;
  return 0;
}
