#!/usr/bin/env python3
"""Builds tiny random Qwen3-Next and Qwen3-MoE checkpoints with transformers and records reference
outputs, so moerun's model can be checked against transformers' own implementation.

Run where transformers (5.x) and safetensors are installed (no network needed):

    python3 tools/make_model_fixtures.py OUT_DIR

For each fixture OUT_DIR/<name>/ holds:
  config.json                 the transformers config (v5 layout: rope_parameters nested)
  model.safetensors           weights (or model-0000N-of-0000M.safetensors + index for sharded ones)
  reference.json              prompt_ids, generated_ids (16 greedy steps), vocab_size, notes
  logits.bin                  little-endian f32 [len(prompt) + 16, vocab]: logits at every position of
                              prompt + generated tokens (row len(prompt)-1+j chose generated token j)

Weights are drawn so that no term hides: norms (zero-centred for Qwen3-Next), A_log, dt_bias, conv,
the shared-expert gate and the routers are all random. Variants:
  qwen3next_a         f32, per-expert tensor names (transformers v4 style)
  qwen3next_a_bf16    the same weights rounded to bf16 and stored as bf16; logits computed in f32
                      from the rounded weights
  qwen3next_a_nf4     bitsandbytes NF4 (double-quantised) packing of a's Linear weights, written
                      here from the format description (bitsandbytes is not needed); logits computed
                      from the dequantised weights
  qwen3next_b         f32, fused v5 expert tensors (experts.gate_up_proj / experts.down_proj),
                      another shape (interval 2, 16 experts, top-4, 3 value heads per key head),
                      split into two shards
  qwen3moe            Qwen3-MoE (plain RMSNorm, full RoPE, no shared expert), f32
"""
import json
import math
import os
import sys

import torch
from safetensors.torch import save_file

PROMPT_LEN = 40
DECODE_STEPS = 16
VOCAB = 256

NF4_CODE = [-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
            -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
            0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
            0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0]


def qwen3next_config(variant):
    from transformers import Qwen3NextConfig
    if variant == "a":
        layers, interval, kh, vh, kd, vd = 4, 4, 2, 4, 16, 16
        heads, kv, head_dim, experts, top_k, ffn, shared, hidden = 4, 2, 32, 8, 2, 32, 48, 64
    else:
        layers, interval, kh, vh, kd, vd = 4, 2, 2, 6, 16, 16
        heads, kv, head_dim, experts, top_k, ffn, shared, hidden = 4, 1, 48, 16, 4, 32, 64, 96
    layer_types = ["linear_attention" if (i + 1) % interval else "full_attention" for i in range(layers)]
    return Qwen3NextConfig(
        vocab_size=VOCAB, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=kv, head_dim=head_dim,
        max_position_embeddings=4096, rms_norm_eps=1e-6, tie_word_embeddings=False,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.25},
        partial_rotary_factor=0.25, linear_conv_kernel_dim=4, linear_key_head_dim=kd,
        linear_value_head_dim=vd, linear_num_key_heads=kh, linear_num_value_heads=vh,
        moe_intermediate_size=ffn, shared_expert_intermediate_size=shared, num_experts=experts,
        num_experts_per_tok=top_k, norm_topk_prob=True, layer_types=layer_types,
        full_attention_interval=interval, decoder_sparse_step=1, mlp_only_layers=[],
        eos_token_id=VOCAB - 1, bos_token_id=None, pad_token_id=None)


def qwen3moe_config():
    from transformers import Qwen3MoeConfig
    return Qwen3MoeConfig(
        vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=4096,
        rms_norm_eps=1e-6, tie_word_embeddings=False,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
        moe_intermediate_size=32, num_experts=8, num_experts_per_tok=3, norm_topk_prob=True,
        decoder_sparse_step=1, mlp_only_layers=[], eos_token_id=VOCAB - 1)


def randomize(model, zero_centred_norms, gen):
    """Draws every parameter so that each term of the forward pass matters."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("A_log"):
                p.copy_(torch.empty_like(p).uniform_(0.0, math.log(16.0), generator=gen))
            elif name.endswith("dt_bias"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
            elif "norm" in name and p.dim() == 1:
                if zero_centred_norms and not name.endswith("linear_attn.norm.weight"):
                    p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
                else:
                    p.copy_(1.0 + torch.randn(p.shape, generator=gen) * 0.2)
            elif "embed_tokens" in name:
                p.copy_(torch.randn(p.shape, generator=gen))
            elif "conv1d" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
            elif name.endswith("experts.gate_up_proj") or name.endswith("experts.down_proj"):
                fan_in = p.shape[-1]
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(fan_in))
            else:
                fan_in = p.shape[-1]
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(fan_in))


def split_fused_experts(state):
    """Rewrites v5 fused expert tensors as per-expert v4 names (gate rows come first in gate_up)."""
    out = {}
    for k, v in state.items():
        if k.endswith("mlp.experts.gate_up_proj"):
            base = k[: -len("gate_up_proj")]
            inter = v.shape[1] // 2
            for e in range(v.shape[0]):
                out[f"{base}{e}.gate_proj.weight"] = v[e, :inter].clone()
                out[f"{base}{e}.up_proj.weight"] = v[e, inter:].clone()
        elif k.endswith("mlp.experts.down_proj"):
            base = k[: -len("down_proj")]
            for e in range(v.shape[0]):
                out[f"{base}{e}.down_proj.weight"] = v[e].clone()
        else:
            out[k] = v
    return out


def nf4_pack(w, gen_offset_table):
    """Packs a [out, in] f32 matrix as bitsandbytes NF4 with double-quantised absmax.
    Returns (tensors dict keyed by suffix, dequantised f32 matrix)."""
    flat = w.reshape(-1).to(torch.float32)
    n = flat.numel()
    assert n % 64 == 0, "NF4 fixtures need sizes divisible by 64"
    blocks = flat.view(-1, 64)
    absmax = blocks.abs().max(dim=1).values.clamp_min(1e-12)
    code = torch.tensor(NF4_CODE)
    normed = blocks / absmax[:, None]
    idx = (normed[..., None] - code).abs().argmin(dim=-1).to(torch.uint8).reshape(-1)
    packed = (idx[0::2] << 4) | idx[1::2]  # high nibble first
    # Double quantisation of absmax: offset, then blocks of 256 against a signed 8-bit table.
    offset = absmax.mean().item()
    centred = absmax - offset
    nested_map = gen_offset_table
    n_nested = (absmax.numel() + 255) // 256
    nested_absmax = torch.zeros(n_nested)
    codes = torch.zeros(absmax.numel(), dtype=torch.uint8)
    deq_absmax = torch.zeros_like(absmax)
    for b in range(n_nested):
        seg = centred[b * 256:(b + 1) * 256]
        m = seg.abs().max().clamp_min(1e-12)
        nested_absmax[b] = m
        c = (seg[:, None] / m - nested_map).abs().argmin(dim=-1)
        codes[b * 256:(b + 1) * 256] = c.to(torch.uint8)
        deq_absmax[b * 256:(b + 1) * 256] = nested_map[c] * m + offset
    deq = (code[idx.long()].view(-1, 64) * deq_absmax[:, None]).reshape(w.shape)
    state = {"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": list(w.shape),
             "nested_blocksize": 256, "nested_offset": offset, "nested_dtype": "float32"}
    blob = torch.tensor(list(json.dumps(state).encode()), dtype=torch.uint8)
    tensors = {"": packed.view(-1, 1), ".absmax": codes, ".nested_absmax": nested_absmax,
               ".nested_quant_map": nested_map.clone(), ".quant_map": code.clone(),
               ".quant_state.bitsandbytes__nf4": blob}
    return tensors, deq


def nf4_skip(name):
    return ("lm_head" in name or name.endswith("mlp.gate.weight") or "shared_expert_gate" in name
            or "embed_tokens" in name or "norm" in name or "conv1d" in name or p_is_vector(name))


def p_is_vector(name):
    return name.endswith("A_log") or name.endswith("dt_bias")


def reference(model, prompt):
    """Greedy decode by full recomputation (no cache), then logits at every position."""
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(DECODE_STEPS):
            logits = model(torch.tensor([ids])).logits[0, -1]
            ids.append(int(torch.argmax(logits)))
        full = model(torch.tensor([ids])).logits[0].to(torch.float32)
        # The cached (recurrent) decode path must agree with the recomputed one.
        out = model.generate(torch.tensor([prompt]), max_new_tokens=DECODE_STEPS, do_sample=False,
                             min_new_tokens=DECODE_STEPS)
        cached = out[0, len(prompt):].tolist()
    generated = ids[len(prompt):]
    for j, tok in enumerate(generated):
        assert int(torch.argmax(full[len(prompt) - 1 + j])) == tok, "chunked and stepwise disagree"
    return generated, full, cached


def write_fixture(out_dir, name, model, state, prompt, notes, shards=1, dtype_note="float32"):
    import transformers
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    model.config.save_pretrained(d)
    keys = sorted(state.keys())
    if shards == 1:
        save_file({k: state[k].contiguous() for k in keys}, os.path.join(d, "model.safetensors"))
    else:
        weight_map = {}
        per = (len(keys) + shards - 1) // shards
        for s in range(shards):
            fname = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
            part = {k: state[k].contiguous() for k in keys[s * per:(s + 1) * per]}
            save_file(part, os.path.join(d, fname))
            weight_map.update({k: fname for k in part})
        with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {}, "weight_map": weight_map}, f, indent=1)
    generated, logits, cached = reference(model, prompt)
    logits.numpy().astype("<f4").tofile(os.path.join(d, "logits.bin"))
    with open(os.path.join(d, "reference.json"), "w") as f:
        json.dump({"prompt_ids": prompt, "generated_ids": generated, "cached_generate_ids": cached,
                   "vocab_size": VOCAB, "rows": len(prompt) + DECODE_STEPS, "weights": dtype_note,
                   "transformers": transformers.__version__, "torch": torch.__version__,
                   "notes": notes}, f, indent=1)
    print(f"{name}: generated {generated} (cached generate {'agrees' if cached == generated else 'DIFFERS: ' + str(cached)})")


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/models"
    torch.manual_seed(0)
    torch.set_default_dtype(torch.float32)
    from transformers import Qwen3MoeForCausalLM, Qwen3NextForCausalLM
    gen = torch.Generator().manual_seed(1234)
    prompt = torch.randint(0, VOCAB - 1, (PROMPT_LEN,), generator=gen).tolist()

    # a: f32, per-expert names.
    model = Qwen3NextForCausalLM(qwen3next_config("a")).eval()
    model.config._attn_implementation = "eager"
    randomize(model, True, gen)
    print("a: rotary inv_freq", tuple(model.model.rotary_emb.inv_freq.shape), "layer types", model.config.layer_types)
    base_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    write_fixture(out_dir, "qwen3next_a", model, split_fused_experts(base_state), prompt,
                  "f32, per-expert names")

    # a_bf16: same weights rounded to bf16, stored as bf16, logits from the rounded weights in f32.
    rounded = {k: v.to(torch.bfloat16) for k, v in base_state.items()}
    model.load_state_dict({k: v.to(torch.float32) for k, v in rounded.items()})
    write_fixture(out_dir, "qwen3next_a_bf16", model, split_fused_experts(rounded), prompt,
                  "bf16 weights, f32 compute", dtype_note="bfloat16")

    # a_nf4: Linear weights NF4-packed; logits from the dequantised weights.
    model.load_state_dict(base_state)
    per_expert = split_fused_experts(base_state)
    nested_map = torch.linspace(-1.0, 1.0, 256)
    nf4_state, deq_state = {}, dict(per_expert)
    for k, v in per_expert.items():
        if v.dim() == 2 and not nf4_skip(k):
            tensors, deq = nf4_pack(v, nested_map)
            for suffix, t in tensors.items():
                nf4_state[k + suffix] = t
            deq_state[k] = deq
        else:
            nf4_state[k] = v
    # Load the dequantised weights back into the (fused) model for the reference.
    fused = dict(base_state)
    for k in list(fused.keys()):
        if k.endswith("mlp.experts.gate_up_proj"):
            base = k[: -len("gate_up_proj")]
            fused[k] = torch.stack([torch.cat([deq_state[f"{base}{e}.gate_proj.weight"],
                                               deq_state[f"{base}{e}.up_proj.weight"]])
                                    for e in range(fused[k].shape[0])])
        elif k.endswith("mlp.experts.down_proj"):
            base = k[: -len("down_proj")]
            fused[k] = torch.stack([deq_state[f"{base}{e}.down_proj.weight"]
                                    for e in range(fused[k].shape[0])])
        elif k in deq_state:
            fused[k] = deq_state[k]
    model.load_state_dict(fused)
    model.config.quantization_config = {
        "quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_quant_type": "nf4",
        "bnb_4bit_use_double_quant": True, "bnb_4bit_compute_dtype": "float32",
        "llm_int8_skip_modules": ["lm_head", "mlp.gate", "shared_expert_gate"]}
    write_fixture(out_dir, "qwen3next_a_nf4", model, nf4_state, prompt,
                  "NF4 double-quantised Linear weights; reference = dequantised f32 model")

    # b: another shape, fused v5 expert tensors, two shards.
    model = Qwen3NextForCausalLM(qwen3next_config("b")).eval()
    model.config._attn_implementation = "eager"
    randomize(model, True, gen)
    write_fixture(out_dir, "qwen3next_b", model, {k: v.detach().clone() for k, v in model.state_dict().items()},
                  prompt, "f32, fused v5 experts, 2 shards", shards=2)

    # Qwen3-MoE.
    model = Qwen3MoeForCausalLM(qwen3moe_config()).eval()
    model.config._attn_implementation = "eager"
    randomize(model, False, gen)
    write_fixture(out_dir, "qwen3moe", model, split_fused_experts({k: v.detach().clone() for k, v in model.state_dict().items()}),
                  prompt, "f32, per-expert names")


if __name__ == "__main__":
    main()
