"""The world's text encoder: a tiny Hugging Face T5 encoder over the world's words, trained with the transformer.

It stands in for Flan-T5-XL and is saved as an ordinary Hugging Face folder (``config.json``, the
weights as safetensors, a ``tokenizer.json``), so the project's ``load_text_encoder`` opens it as
it opens Flan-T5: same class, same tokenisation call, same features (every token, ``</s>`` last).

The tokenizer is word level: one id per word of ``ttsvar.world.VOCABULARY`` (in its order, after
``<pad>``, ``</s>`` and ``<unk>``), lower-casing and splitting on whitespace and punctuation, and
it appends ``</s>`` as T5's does. A word outside the world becomes ``<unk>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from .vocab import MAX_CAPTION_WORDS, VOCABULARY

SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>")


@dataclass(frozen=True)
class TextEncoderConfig:
    """Sizes of the tiny T5 encoder; `channels` is the width the transformer reads (`text_channels`)."""

    channels: int = 128
    layers: int = 2
    heads: int = 4
    ff: int = 256

    def t5_config(self):
        from transformers import T5Config

        return T5Config(
            vocab_size=len(SPECIAL_TOKENS) + len(VOCABULARY), d_model=self.channels, d_kv=self.channels // self.heads,
            d_ff=self.ff, num_layers=self.layers, num_decoder_layers=0, num_heads=self.heads,
            relative_attention_num_buckets=8, relative_attention_max_distance=2 * (MAX_CAPTION_WORDS + 1),
            dropout_rate=0.0, feed_forward_proj="gated-gelu", pad_token_id=0, eos_token_id=1,
            decoder_start_token_id=0, is_encoder_decoder=False, use_cache=False, tie_word_embeddings=False,
        )


def build_tokenizer():
    """The word-level tokenizer as a `PreTrainedTokenizerFast` (what `AutoTokenizer` loads back)."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS + VOCABULARY)}
    core = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", vocab["</s>"])])
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                                   model_max_length=512)


def new_text_encoder(config: TextEncoderConfig, seed: int):
    """A freshly initialised T5 encoder (float32, training mode), identical for equal seeds
    (the global random state is left as it was)."""
    from transformers import T5EncoderModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = T5EncoderModel(config.t5_config())
    return model.train()


def encode_captions(model, tokenizer, captions: Sequence[str]) -> list[torch.Tensor]:
    """Features [L_i, channels] of each caption, `</s>` included, differentiable.

    The captions are padded to one batch and the padding is masked, which gives every caption the
    features `T5TextEncoder.features` computes for it alone.
    """
    batch = tokenizer(list(captions), padding=True, return_tensors="pt")
    device = next(model.parameters()).device
    mask = batch.attention_mask.to(device)
    hidden = model(input_ids=batch.input_ids.to(device), attention_mask=mask).last_hidden_state
    return [h[: int(n)] for h, n in zip(hidden, mask.sum(1))]


def save_text_encoder(model, tokenizer, folder: str | Path) -> Path:
    """Write the encoder (bf16 safetensors) and the tokenizer as a Hugging Face folder."""
    import copy

    from ..hf_folder import quiet_transformers

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with quiet_transformers():  # no progress bar per file
        copy.deepcopy(model).to(torch.bfloat16).save_pretrained(str(folder), safe_serialization=True)
        tokenizer.save_pretrained(str(folder))
    return folder
