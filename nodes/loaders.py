"""Loader nodes: Infinity model, text encoder, feature extractor, reward models (+ combination).

Every combo lists what is in the pack's model folders plus the built-in demo entries
(:mod:`nodes.demo`). Loaded objects travel as node outputs: ComfyUI caches them,
so each file is loaded once per loader output and shared by every consumer. Weights are loaded
onto ComfyUI's offload device; the nodes that use them move them to its main device through its
model management (``comfy_bridge.load_models``), which can also unload them again.
"""

from __future__ import annotations

from ttsvar.errors import TTSVarError

from . import comfy_bridge as bridge
from . import demo
from .common import CATEGORY, FEATURES, MODEL, REWARD, TEXT_ENCODER, InputError, blame, guarded, tip

DTYPES = ("auto", "bfloat16", "float16", "float32")

#: Reward families offered by the loader; ``ttsvar.scoring`` implements them.
REWARD_FAMILIES = ("imagereward", "hpsv2", "clip", "aesthetic", "pickscore", "world-reward")
#: Mirror of ttsvar.scoring.combine.NORMALIZATIONS (that module imports torch; a test checks they match).
NORMALIZATIONS = ("softmax", "zscore", "none")
#: Feature-extractor families (cluster filter); ``pca`` / ``pool`` = how patch tokens are reduced.
FEATURE_FAMILIES = ("dinov2 (pca)", "dinov2 (pool)", "clip-features", "world-features (pca)", "world-features (pool)")

#: Weights entry of the reward/feature loaders meaning "the world verifier shipped in the package"
#: (ttsvar/world/weights/verifier); only the world-* families accept it.
BUILT_IN = "(built-in world verifier)"
WORLD_FAMILIES = ("world-reward", "world-features")

#: Loading runs out of memory before any candidate exists: only freeing memory or a smaller dtype helps.
LOADER_OOM_ADVICE = (
    "ran out of memory while loading. Free other models (Unload models), or choose a smaller dtype "
    "(bfloat16 or float16) where the loader has one, and try again."
)

#: Default file names users download (documented in the README section).
EXPECTED = {
    "infinity_transformer": ("infinity_2b_reg.pth", "infinity_8b_weights/"),
    "infinity_vae": ("infinity_vae_d32reg.pth", "infinity_vae_d56_f8_14_patchify.pth"),
    "text_encoder": ("flan-t5-xl/",),
    "imagereward": ("ImageReward.pt",),
    "hpsv2": ("HPS_v2.1_compressed.pt",),
    "dinov2": ("dinov2-with-registers-large/",),
}


def _choices(key: str, *, files: bool = True, dirs: bool = True) -> list[str]:
    return bridge.list_entries(key, files=files, dirs=dirs) + list(demo.ENTRIES)


def _verifier_choices(key: str) -> list[str]:
    return bridge.list_entries(key) + list(demo.VERIFIER_ENTRIES) + [BUILT_IN]


def _verifier_path(key: str, family: str, weights: str) -> str:
    """The path a verifier family loads: the package's own folder for the built-in entry ("")."""
    if weights != BUILT_IN:
        return _resolve(key, "weights", weights)
    if family.split(" (")[0] not in WORLD_FAMILIES:
        raise InputError("weights", f"'{BUILT_IN}' holds the synthetic world's verifier only; choose family "
                         f"{' or '.join(WORLD_FAMILIES)}, or pick {family}'s weights from models/{key}.")
    return ""


def _resolve(key: str, input_name: str, name: str) -> str:
    path = bridge.full_path(key, name)
    if path is None:
        raise InputError(
            input_name,
            f"'{name}' is not in the '{key}' model folder (searched: {bridge.searched(key)}). "
            f"Put the file there or choose another entry.",
        )
    return path


def _dtype(name: str):
    if name == "auto":
        return None
    import torch

    return getattr(torch, name)


class TTSVAR_InfinityLoader:
    DESCRIPTION = (
        "Loads an Infinity transformer and its BSQ-VAE from models/infinity (architecture detected from "
        "the checkpoint: 2B, 8B or any size). Choose '(world model demo)' in both boxes for the small model "
        "trained on the synthetic world that ships with the pack (64×64 scenes of shapes; 0.06M), or "
        "'(tiny random demo)' for random weights (runs anywhere, images are noise)."
    )
    CATEGORY = f"{CATEGORY}/loaders"
    RETURN_TYPES = (MODEL,)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("The Infinity model (transformer + VAE), shared by every node that uses it.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "transformer": (_choices("infinity"), tip("Transformer checkpoint in models/infinity: infinity_2b_reg.pth (2B) or the folder infinity_8b_weights/ (8B).")),
                "vae": (_choices("infinity", dirs=False), tip("VAE checkpoint in models/infinity: infinity_vae_d32reg.pth (2B) or infinity_vae_d56_f8_14_patchify.pth (8B).")),
                "dtype": (list(DTYPES), tip("Weight dtype; auto = bfloat16 on GPUs that support it, else float32.", default="auto")),
            }
        }

    @guarded("TTS-VAR Load Infinity Model", oom_advice=LOADER_OOM_ADVICE)
    def load(self, transformer, vae, dtype="auto"):
        if demo.is_demo(transformer) or demo.is_demo(vae):
            if transformer != vae:
                which, entry = ("vae", transformer) if demo.is_demo(transformer) else ("transformer", vae)
                raise InputError(which, f"choose '{entry}' for both transformer and vae, or real files for both.")
            return (demo.infinity_model(transformer),)
        from ttsvar.infinity.model import load_infinity

        t_path = _resolve("infinity", "transformer", transformer)
        v_path = _resolve("infinity", "vae", vae)
        try:
            model = load_infinity(t_path, v_path, device=bridge.offload_device(), dtype=_dtype(dtype))
        except TTSVarError as exc:  # the library says which of the two files it could not use
            raise InputError(getattr(exc, "part", "transformer"), str(exc)) from None
        return (model,)


class TTSVAR_TextEncoderLoader:
    DESCRIPTION = (
        "Loads the Flan-T5-XL text encoder from a folder in models/text_encoders (e.g. flan-t5-xl/ with "
        "config.json, tokenizer files and weights). '(world model demo)' is the world model's own encoder; "
        "'(tiny random demo)' builds a deterministic random encoder sized for the connected model."
    )
    CATEGORY = f"{CATEGORY}/loaders"
    RETURN_TYPES = (TEXT_ENCODER,)
    RETURN_NAMES = ("text_encoder",)
    OUTPUT_TOOLTIPS = ("The text encoder; feed it to TTS-VAR Encode Prompt.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "encoder": (_choices("text_encoders", files=False), tip("Folder in models/text_encoders holding google/flan-t5-xl (e.g. flan-t5-xl/).")),
                "dtype": (list(DTYPES), tip("Weight dtype; auto = bfloat16 on GPUs that support it, else float32.", default="auto")),
            },
            "optional": {
                "model": (MODEL, tip("Only needed for '(tiny random demo)': the tiny encoder is sized for this model.")),
            },
        }

    @guarded("TTS-VAR Load Text Encoder", oom_advice=LOADER_OOM_ADVICE)
    def load(self, encoder, dtype="auto", model=None):
        if demo.is_demo(encoder):
            if model is None and demo.needs_model(encoder):
                raise InputError("model", f"'{encoder}' needs the model input connected (the demo encoder is sized for it).")
            return (demo.text_encoder(encoder, model),)
        from ttsvar.infinity.text import load_text_encoder, t5_default_dtype

        path = _resolve("text_encoders", "encoder", encoder)
        # Loaded on the offload device, in the dtype it will run in on ComfyUI's device; Encode Prompt
        # moves it there through ComfyUI's model management (bridge.load_models).
        run_on = bridge.torch_device() or "cpu"
        with blame("encoder"):
            return (load_text_encoder(path, device=bridge.offload_device() or run_on, dtype=_dtype(dtype) or t5_default_dtype(run_on)),)


class TTSVAR_FeatureExtractorLoader:
    DESCRIPTION = (
        "Loads the feature extractor the cluster filter uses (the official code: DINOv2 ViT-L/14 with registers, "
        "patch tokens reduced by PCA to one value per patch). Files go in models/ttsvar_features: the folder "
        "dinov2-with-registers-large/ from facebook/dinov2-with-registers-large (dinov2-large/ without registers "
        "works too, but is not what the official code uses). The synthetic world's own extractor ships with the "
        "pack: family world-features, weights '(built-in world verifier)'."
    )
    CATEGORY = f"{CATEGORY}/loaders"
    RETURN_TYPES = (FEATURES,)
    RETURN_NAMES = ("feature_extractor",)
    OUTPUT_TOOLTIPS = ("Image features for the cluster filter.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "family": (list(FEATURE_FAMILIES), tip("Which extractor and pooling: DINOv2 with PCA (the paper's and the official default), DINOv2 with mean pooling, CLIP image embeddings, or the synthetic world's extractor.", default=FEATURE_FAMILIES[0])),
                "weights": (_verifier_choices("ttsvar_features"), tip(f"Folder or file in models/ttsvar_features (dinov2-with-registers-large/ for the official DINOv2 with registers); '(tiny random demo)' = random features; '{BUILT_IN}' = the world's own (world-features).")),
            }
        }

    @guarded("TTS-VAR Load Feature Extractor", oom_advice=LOADER_OOM_ADVICE)
    def load(self, family, weights):
        from . import scoring_adapter

        if demo.is_demo_verifier(weights):
            return (demo.feature_extractor(weights, family),)
        path = _verifier_path("ttsvar_features", family, weights)
        with blame("weights"):
            return (scoring_adapter.load_feature_extractor(family, path, device=bridge.offload_device()),)


class TTSVAR_RewardModelLoader:
    DESCRIPTION = (
        "Loads a reward model (ImageReward, HPSv2, CLIP score, aesthetic, PickScore) from "
        "models/ttsvar_rewards. Higher reward = better image. Combine several with TTS-VAR Combine Rewards. "
        "The synthetic world's own reward ships with the pack: family world-reward, weights "
        "'(built-in world verifier)'."
    )
    CATEGORY = f"{CATEGORY}/loaders"
    RETURN_TYPES = (REWARD,)
    RETURN_NAMES = ("reward_model",)
    OUTPUT_TOOLTIPS = ("A reward model for resampling and final selection.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "family": (list(REWARD_FAMILIES), tip("Reward model family; the paper uses ImageReward.", default="imagereward")),
                "weights": (_verifier_choices("ttsvar_rewards"), tip(f"File or folder in models/ttsvar_rewards: ImageReward.pt (with med_config.json beside it), HPS_v2.1_compressed.pt, a CLIP/PickScore folder...; '(tiny random demo)' = a random reward; '{BUILT_IN}' = the world's own (world-reward).")),
            }
        }

    @guarded("TTS-VAR Load Reward Model", oom_advice=LOADER_OOM_ADVICE)
    def load(self, family, weights):
        from . import scoring_adapter

        if demo.is_demo_verifier(weights):
            return (demo.reward_model(weights, family),)
        path = _verifier_path("ttsvar_rewards", family, weights)
        with blame("weights"):
            return (scoring_adapter.load_reward(family, path, device=bridge.offload_device()),)


class TTSVAR_CombineRewards:
    DESCRIPTION = (
        "Combines two to four reward models into one: each reward is normalised over the candidate batch "
        "(softmax, the paper's choice for HPS+ImageReward; or z-score; or none), then averaged with the weights."
    )
    CATEGORY = f"{CATEGORY}/loaders"
    RETURN_TYPES = (REWARD,)
    RETURN_NAMES = ("reward_model",)
    OUTPUT_TOOLTIPS = ("The combined reward model.",)
    FUNCTION = "combine"

    @classmethod
    def INPUT_TYPES(cls):
        w = lambda n: ("FLOAT", tip(f"Weight of reward {n} (≥ 0).", default=1.0, min=0.0, max=100.0, step=0.05))  # noqa: E731
        return {
            "required": {
                "reward_a": (REWARD, tip("First reward model.")),
                "weight_a": w("a"),
                "reward_b": (REWARD, tip("Second reward model.")),
                "weight_b": w("b"),
                "normalization": (list(NORMALIZATIONS), tip("How each reward is normalised over the batch before averaging: softmax (paper), zscore, none.", default="softmax")),
            },
            "optional": {
                "reward_c": (REWARD, tip("Optional third reward model.")),
                "weight_c": w("c"),
                "reward_d": (REWARD, tip("Optional fourth reward model.")),
                "weight_d": w("d"),
            },
        }

    @guarded("TTS-VAR Combine Rewards", oom_advice=LOADER_OOM_ADVICE)
    def combine(self, reward_a, weight_a, reward_b, weight_b, normalization="softmax", reward_c=None, weight_c=1.0, reward_d=None, weight_d=1.0):
        from . import scoring_adapter

        pairs = [(reward_a, weight_a), (reward_b, weight_b), (reward_c, weight_c), (reward_d, weight_d)]
        pairs = [(r, float(w)) for r, w in pairs if r is not None]
        if all(w == 0 for _, w in pairs):
            raise InputError("weight_a", "all weights are 0; give at least one reward a positive weight.")
        with blame("normalization"):
            return (scoring_adapter.combine_rewards([r for r, _ in pairs], [w for _, w in pairs], normalization),)


NODES = {
    "TTSVAR_InfinityLoader": (TTSVAR_InfinityLoader, "TTS-VAR Load Infinity Model"),
    "TTSVAR_TextEncoderLoader": (TTSVAR_TextEncoderLoader, "TTS-VAR Load Text Encoder"),
    "TTSVAR_FeatureExtractorLoader": (TTSVAR_FeatureExtractorLoader, "TTS-VAR Load Feature Extractor"),
    "TTSVAR_RewardModelLoader": (TTSVAR_RewardModelLoader, "TTS-VAR Load Reward Model"),
    "TTSVAR_CombineRewards": (TTSVAR_CombineRewards, "TTS-VAR Combine Rewards"),
}
