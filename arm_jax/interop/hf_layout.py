"""Where each arm_jax decoder parameter lives in a Qwen2 / Llama Hugging Face checkpoint.

arm_jax stacks layers ([layers, ...] leaves, scanned) and stores linear kernels as [in, out];
Hugging Face has one tensor per layer and `nn.Linear` weights as [out, in]. The embedding and
lm_head rows extend past the checkpoint's vocabulary (specials, image codes): see hf_import.py.
Both directions read this one table.
"""
from __future__ import annotations

import dataclasses

EMBED = "model.embed_tokens.weight"       # [vocab, d_model]
FINAL_NORM = "model.norm.weight"          # [d_model]
LM_HEAD = "lm_head.weight"                # [vocab, d_model]; absent when tied


@dataclasses.dataclass(frozen=True)
class LayerTensor:
  path: tuple[str, ...]   # arm_jax leaf under the stacked `blocks`
  hf: str                 # per-layer name, `{i}` = layer index
  transpose: bool         # Linear kernel: arm_jax [in, out] vs torch [out, in]

  def name(self, i: int) -> str:
    return self.hf.format(i=i)


_ATTN = "model.layers.{i}.self_attn."
_MLP = "model.layers.{i}.mlp."
LAYER_TENSORS = (
    LayerTensor(("blocks", "input_norm", "scale"), "model.layers.{i}.input_layernorm.weight",
                False),
    LayerTensor(("blocks", "attn", "q_proj", "kernel"), _ATTN + "q_proj.weight", True),
    LayerTensor(("blocks", "attn", "q_proj", "bias"), _ATTN + "q_proj.bias", False),
    LayerTensor(("blocks", "attn", "k_proj", "kernel"), _ATTN + "k_proj.weight", True),
    LayerTensor(("blocks", "attn", "k_proj", "bias"), _ATTN + "k_proj.bias", False),
    LayerTensor(("blocks", "attn", "v_proj", "kernel"), _ATTN + "v_proj.weight", True),
    LayerTensor(("blocks", "attn", "v_proj", "bias"), _ATTN + "v_proj.bias", False),
    LayerTensor(("blocks", "attn", "o_proj", "kernel"), _ATTN + "o_proj.weight", True),
    LayerTensor(("blocks", "post_attn_norm", "scale"),
                "model.layers.{i}.post_attention_layernorm.weight", False),
    LayerTensor(("blocks", "mlp", "gate_proj", "kernel"), _MLP + "gate_proj.weight", True),
    LayerTensor(("blocks", "mlp", "up_proj", "kernel"), _MLP + "up_proj.weight", True),
    LayerTensor(("blocks", "mlp", "down_proj", "kernel"), _MLP + "down_proj.weight", True),
)


def layer_tensors(qkv_bias: bool) -> tuple[LayerTensor, ...]:
  return tuple(t for t in LAYER_TENSORS if qkv_bias or t.path[-1] != "bias")


# Tensors a checkpoint may carry that the network does not use (old Llama saves RoPE tables).
IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)
