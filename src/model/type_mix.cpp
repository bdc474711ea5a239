#include "model/type_mix.h"

namespace moerun {
namespace {

bool divides(DType type, int64_t ne0) {
  return ne0 % dtype_info(type).block_elems == 0;
}

}  // namespace

std::optional<TypeMix> parse_type_mix(const std::string& name) {
  if (name == "q4_k_m") return TypeMix::q4_k_m;
  if (name == "q8_0") return TypeMix::q8_0;
  if (name == "bf16") return TypeMix::bf16;
  if (name == "f32") return TypeMix::f32;
  return std::nullopt;
}

DType tensor_type_in_mix(TypeMix mix, const TensorSpec& s) {
  if (s.ne.size() < 2) return DType::F32;  // vectors: norms, biases, A, the shared-expert gate
  switch (s.role) {
    case TensorRole::router:
    case TensorRole::conv:
      return DType::F32;  // llama.cpp keeps routers and conv in F32
    default:
      break;
  }
  DType preferred = DType::F32;
  switch (mix) {
    case TypeMix::f32:
      return DType::F32;
    case TypeMix::bf16:
      preferred = DType::BF16;
      break;
    case TypeMix::q8_0:
      preferred = DType::Q8_0;
      break;
    case TypeMix::q4_k_m:
      switch (s.role) {
        case TensorRole::output:
        case TensorRole::value_proj:
        case TensorRole::shared_down:
          preferred = DType::Q6_K;
          break;
        case TensorRole::ssm_ba:
          preferred = DType::Q8_0;
          break;
        default:
          preferred = DType::Q4_K;
          break;
      }
      break;
  }
  if (divides(preferred, s.ne[0])) return preferred;
  return divides(DType::Q8_0, s.ne[0]) && mix != TypeMix::bf16 ? DType::Q8_0 : DType::F32;
}

uint32_t llama_file_type(TypeMix mix) {
  switch (mix) {  // llama_ftype values
    case TypeMix::f32:
      return 0;
    case TypeMix::q8_0:
      return 7;
    case TypeMix::q4_k_m:
      return 15;
    case TypeMix::bf16:
      return 32;
  }
  return 0;
}

}  // namespace moerun
