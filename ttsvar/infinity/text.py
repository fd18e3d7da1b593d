"""Text conditioning: prompts → per-token features (Flan-T5-XL encoder from a local folder).

The official pipeline tokenises to at most 512 tokens, runs `T5EncoderModel` and keeps only the
real tokens (EOS included). A negative prompt is encoded the same way; without one, the model's
learned null text (truncated to the prompt's length) serves as the unconditional branch.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from ttsvar.errors import MissingWeightsError, TTSVarError
from ttsvar.hf_folder import load_pretrained, quiet_transformers

MAX_TOKENS = 512
T5_REPO = "google/flan-t5-xl"
T5_HINT = (
    "Download the google/flan-t5-xl folder from Hugging Face (config.json, the model weights "
    "*.safetensors or pytorch_model*.bin, spiece.model / tokenizer.json) into ComfyUI's "
    "models/text_encoders/flan-t5-xl/ (or pass it with --text-encoder)."
)


@dataclass(frozen=True, eq=False)
class TextCondition:
    """An encoded prompt: float32 features [L, C] on the CPU, plus the negative prompt's, if any."""

    prompt: str
    features: torch.Tensor
    negative: str = ""
    negative_features: torch.Tensor | None = None
    encoder: str = ""

    @property
    def channels(self) -> int:
        return self.features.shape[-1]


def check_prompt(prompt: str, name: str = "prompt") -> str:
    if not isinstance(prompt, str) or not prompt.strip():
        raise TTSVarError(f"{name} is empty: write what the image should show.")
    return prompt


def t5_default_dtype(device: torch.device | str) -> torch.dtype:
    """The encoder's weight dtype when none is given: float16 on CUDA, float32 elsewhere."""
    return torch.float16 if torch.device(device).type == "cuda" else torch.float32


class T5TextEncoder:
    """Flan-T5-XL encoder (any T5 encoder folder works) loaded from local files only."""

    def __init__(self, folder: str | Path, *, device: torch.device | str = "cpu", dtype: torch.dtype | None = None):
        from transformers import AutoTokenizer, T5EncoderModel

        folder = Path(folder).expanduser()
        if not (folder / "config.json").is_file():
            raise MissingWeightsError("T5 text encoder (config.json)", str(folder), T5_HINT)
        device = torch.device(device)
        dtype = dtype or t5_default_dtype(device)
        try:
            with quiet_transformers():
                self.tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True, legacy=True)
        except OSError as exc:
            raise MissingWeightsError("T5 tokenizer files", str(folder), f"{T5_HINT} ({exc})") from exc
        # a full T5 folder (flan-t5-xl) also holds the decoder, which the encoder never reads
        self.model = load_pretrained(T5EncoderModel, folder, what="the T5 text encoder", repo=T5_REPO, dtype=dtype,
                                     harmless=("decoder.", "lm_head."))
        self.model.to(device).eval().requires_grad_(False)
        self.name = folder.name
        self.channels = self.model.config.d_model

    @property
    def device(self) -> torch.device:
        """Read from the weights at call time: a host may move ``torch_modules()`` between calls."""
        return next(self.model.parameters()).device

    def torch_modules(self) -> list[torch.nn.Module]:
        """The module holding all the encoder's weights (the tokenizer has none)."""
        return [self.model]

    def features(self, text: str) -> torch.Tensor:
        ids = self.tokenizer(text, truncation=False, return_tensors="pt").input_ids
        if ids.shape[1] > MAX_TOKENS:
            warnings.warn(f"prompt has {ids.shape[1]} tokens; Infinity reads at most {MAX_TOKENS}, the rest is cut.")
            ids = torch.cat([ids[:, : MAX_TOKENS - 1], ids[:, -1:]], dim=1)  # keep the EOS token
        with torch.inference_mode():
            hidden = self.model(input_ids=ids.to(self.device)).last_hidden_state
        return hidden[0].float().cpu()

    def encode(self, prompt: str, negative: str = "") -> TextCondition:
        check_prompt(prompt)
        neg = self.features(negative) if negative.strip() else None
        return TextCondition(prompt, self.features(prompt), negative, neg, encoder=self.name)


class HashTextEncoder:
    """A stand-in encoder for demos and tests: each word maps to a fixed random vector.

    It carries no meaning (the demo model's weights are random too); it lets the whole pipeline
    run without the 10 GB Flan-T5-XL download.
    """

    def __init__(self, channels: int, seed: int = 0):
        self.channels, self.seed, self.name = channels, seed, f"hash-text-{channels}"

    def torch_modules(self) -> list[torch.nn.Module]:
        return []  # no weights

    def _vector(self, word: str) -> torch.Tensor:
        digest = hashlib.sha256(f"{self.seed}:{word}".encode()).digest()
        g = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))
        return torch.randn(self.channels, generator=g) * 0.2

    def features(self, text: str) -> torch.Tensor:
        words = text.lower().split()[: MAX_TOKENS - 1] + ["</s>"]
        return torch.stack([self._vector(w) for w in words])

    def encode(self, prompt: str, negative: str = "") -> TextCondition:
        check_prompt(prompt)
        neg = self.features(negative) if negative.strip() else None
        return TextCondition(prompt, self.features(prompt), negative, neg, encoder=self.name)


def load_text_encoder(folder: str | Path, *, device: torch.device | str = "cpu", dtype: torch.dtype | None = None) -> T5TextEncoder:
    return T5TextEncoder(folder, device=device, dtype=dtype)
