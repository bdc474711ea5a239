// The MoE decoder of moe_decoder.h on the GPU: the same DecoderWeights, uploaded to VRAM under a
// budget, and a forward pass of CUDA kernels (decode steps replayed as CUDA graphs).
#pragma once

#include <memory>

#include "model/moe_decoder.h"

namespace moerun {

// The LanguageModel running `weights` on the current CUDA device as options.gpu says; throws Error
// when the model does not fit the VRAM budget (naming what was needed and what was free).
std::unique_ptr<LanguageModel> make_cuda_decoder(DecoderWeights weights,
                                                 const ModelOptions& options);

}  // namespace moerun
