"""Pipeline nodes: prompt -> schedule -> state -> scales -> filters -> selection -> image.

Every node is a thin call into the library. States are immutable: a node never changes the state
it receives (ComfyUI hands the same cached object to every consumer and to later runs); it
returns a new one.
"""

from __future__ import annotations

from ttsvar.errors import TTSVarError
from ttsvar.infinity.grids import ASPECT_TEMPLATES, PN_CHOICES, PN_SCALES
from ttsvar.schedule import PRESETS

from . import comfy_bridge as bridge
from .common import (
    CATEGORY, CONDITION, FEATURES, MODEL, POTENTIALS, REWARD, SCHEDULE, STATE, STRATEGIES, TEXT_ENCODER,
    InputError, blame, guarded, thumbnails, tip, to_comfy_image,
)

SAMPLING = f"{CATEGORY}/sampling"
SEARCH = f"{CATEGORY}/search"
MAX_SEED = 0xFFFFFFFFFFFFFFFF

FROM_SIZE = "from width/height"
PN_AUTO = "auto (from schedule)"


def _aspect_label(t: float) -> str:
    kind = "square" if t == 1.0 else ("portrait" if t > 1.0 else "landscape")
    return f"{t:.3f} ({kind})"


ASPECT_CHOICES = [FROM_SIZE] + [_aspect_label(t) for t in sorted(ASPECT_TEMPLATES)]
#: Thumbnails are sent to the browser only up to this many candidates (one small JPEG each).
MAX_THUMBNAILS = 64


def _check_state(state, input_name: str = "state"):
    if state is None or not hasattr(state, "num_candidates") or not hasattr(state, "next_scale"):
        raise InputError(input_name, f"expected a {STATE} (from TTS-VAR Start State or a later node), got {type(state).__name__}.")
    return state


def _lineage_ui(state, images=None, title: str = ""):
    """The ``ui`` payload the web extension renders: the state's record plus thumbnails."""
    try:
        record = state.record()
    except Exception as exc:  # noqa: BLE001 - the view is a nicety; never fail a run for it
        record = {"error": f"record unavailable: {exc}"}
    entry = {"title": title, "record": record, "thumbnails": []}
    if images is not None and images.shape[0] <= MAX_THUMBNAILS:
        entry["thumbnails"] = thumbnails(images)
    return {"ttsvar_lineage": [entry]}


# ============================================================================ prompt, schedule, start
class TTSVAR_EncodePrompt:
    DESCRIPTION = "Encodes the prompt (and an optional negative prompt for classifier-free guidance) with the text encoder."
    CATEGORY = SAMPLING
    RETURN_TYPES = (CONDITION,)
    RETURN_NAMES = ("condition",)
    OUTPUT_TOOLTIPS = ("The encoded prompt; also carries the prompt text the reward models read.",)
    FUNCTION = "encode"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "text_encoder": (TEXT_ENCODER, tip("From TTS-VAR Load Text Encoder.")),
                "prompt": ("STRING", tip("What to draw. Reward models also score the images against this text.", multiline=True, default="a photo of a red fox in the snow, golden hour")),
                "negative": ("STRING", tip("Optional negative prompt (the unconditional branch of CFG); empty = none.", multiline=True, default="")),
            }
        }

    @guarded("TTS-VAR Encode Prompt")
    def encode(self, text_encoder, prompt, negative=""):
        from ttsvar.infinity.text import check_prompt

        with blame("prompt"):
            check_prompt(prompt)  # before loading the encoder onto the GPU for nothing
        if not hasattr(text_encoder, "encode"):
            raise InputError("text_encoder", f"expected a {TEXT_ENCODER}, got {type(text_encoder).__name__}.")
        bridge.load_models([text_encoder])
        with blame("prompt"):
            return (text_encoder.encode(prompt, negative or ""),)


class TTSVAR_BatchSchedule:
    DESCRIPTION = (
        "How many candidates live through each scale. tts-var: the paper's descending schedule "
        "(8,8,6,6,6,4,2,2,2,1,1,1,1 ×N at 13 scales; 8,8,6,6,6,4,2,2,1,1 ×N at 10) and the same shape at "
        "12 (8,8,6,6,6,4,2,2,2,1,1,1) and 7 scales (8,8,6,4,2,1,1), always two cluster then two resample "
        "points; best-of-n and "
        "importance-sampling: N at every scale; raw: 1; custom: your list ×N. The chart shows the "
        "candidates per scale with each scale's relative compute and memory."
    )
    CATEGORY = SAMPLING
    RETURN_TYPES = (SCHEDULE,)
    RETURN_NAMES = ("schedule",)
    OUTPUT_TOOLTIPS = ("The batch schedule; connect it to TTS-VAR Start State.",)
    FUNCTION = "build"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "preset": (list(PRESETS), tip("Schedule shape: tts-var (paper), best-of-n / importance-sampling (constant N), raw (one candidate), custom (the list below).", default="tts-var")),
                "n": ("INT", tip("N: multiplies every count (the paper's N=1 gives 8 candidates at the first scales).", default=1, min=1, max=64, step=1)),
                "pn": (list(PN_CHOICES), tip("Pixel budget, which fixes the number of scales: 1M = 13 (1024²), 0.60M = 12, 0.25M = 10 (512²), 0.06M = 7.", default="1M")),
                "custom": ("STRING", tip("Only for preset 'custom': one count per scale, non-increasing, comma-separated (each ×N), e.g. 8,8,6,6,6,4,2,2,2,1,1,1,1.", default="8,8,6,6,6,4,2,2,2,1,1,1,1")),
            }
        }

    @guarded("TTS-VAR Batch Schedule")
    def build(self, preset, n, pn, custom=""):
        from ttsvar.schedule import BatchSchedule

        if pn not in PN_SCALES:
            raise InputError("pn", f"must be one of {', '.join(PN_CHOICES)}, got {pn!r}.")
        with blame("custom" if preset == "custom" else "preset"):
            return (BatchSchedule.preset(preset, int(n), PN_SCALES[pn], custom=custom),)


class TTSVAR_StartState:
    DESCRIPTION = (
        "Creates the search state: the model, the prompt, the scale grid (from width/height or an aspect "
        "template), the batch schedule and the sampling settings. Nothing is sampled yet."
    )
    CATEGORY = SAMPLING
    RETURN_TYPES = (STATE,)
    RETURN_NAMES = ("state",)
    OUTPUT_TOOLTIPS = ("A state before scale 0; connect it to TTS-VAR Sample Scales.",)
    FUNCTION = "start"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": (MODEL, tip("From TTS-VAR Load Infinity Model.")),
                "condition": (CONDITION, tip("From TTS-VAR Encode Prompt (encoded by the text encoder matching this model).")),
                "schedule": (SCHEDULE, tip("From TTS-VAR Batch Schedule; its length must equal the number of scales of the resolution.")),
                "width": ("INT", tip("Image width in pixels; snapped to the nearest Infinity aspect template.", default=1024, min=64, max=4096, step=16)),
                "height": ("INT", tip("Image height in pixels; snapped to the nearest Infinity aspect template.", default=1024, min=64, max=4096, step=16)),
                "aspect": (ASPECT_CHOICES, tip("Aspect template h/w; 'from width/height' picks the nearest one.", default=FROM_SIZE)),
                "pn": ([PN_AUTO] + list(PN_CHOICES), tip("Pixel budget (number of scales). auto = the one matching the schedule's length.", default=PN_AUTO)),
                "cfg": ("FLOAT", tip("Classifier-free guidance scale (paper: 3).", default=3.0, min=0.0, max=30.0, step=0.1)),
                "tau": ("FLOAT", tip("Sampling temperature (paper: 0.5; lower = safer, less diverse).", default=0.5, min=0.01, max=5.0, step=0.01)),
                "top_p": ("FLOAT", tip("Nucleus sampling threshold (paper: 0.97; 1 = off).", default=0.97, min=0.01, max=1.0, step=0.01)),
                "seed": ("INT", tip("Seed: randomness derives from (seed, scale, candidate), so results do not depend on how the graph is split.", default=0, min=0, max=MAX_SEED, control_after_generate=True)),
            },
            "optional": {
                "cfg_insertion_layer": ("INT", tip("Official Infinity option: the layer where CFG is applied to logits (0 = at the output).", default=0, min=-64, max=64)),
            },
        }

    @guarded("TTS-VAR Start State")
    def start(self, model, condition, schedule, width, height, aspect, pn, cfg, tau, top_p, seed, cfg_insertion_layer=0):
        from ttsvar.infinity.grids import resolve_grid
        from ttsvar.sampler import start_state

        if not hasattr(schedule, "sizes"):
            raise InputError("schedule", f"expected a {SCHEDULE}, got {type(schedule).__name__}.")
        if pn == PN_AUTO:
            counts = {v: k for k, v in PN_SCALES.items()}
            pn_value = counts.get(len(schedule.sizes))
            if pn_value is None:
                raise InputError(
                    "schedule",
                    f"has {len(schedule.sizes)} entries; Infinity resolutions have {', '.join(f'{v} ({k})' for k, v in PN_SCALES.items())} scales.",
                )
        else:
            pn_value = pn
        with blame("aspect" if aspect != FROM_SIZE else "width"):
            if aspect == FROM_SIZE:
                grid = resolve_grid(width=int(width), height=int(height), pn=pn_value)
            else:
                grid = resolve_grid(aspect=float(aspect.split()[0]), pn=pn_value)
        with blame("schedule"):
            try:
                schedule.validate(grid.num_scales)
            except TTSVarError as exc:
                raise InputError("schedule", f"{exc} (pn here is {pn_value}; set the schedule's pn to the same value)") from None
        bridge.load_models([model])
        with blame("condition"):
            state = start_state(
                model, condition, schedule, grid,
                cfg=float(cfg), tau=float(tau), top_p=float(top_p), seed=int(seed),
                cfg_insertion_layer=int(cfg_insertion_layer),
            )
        return (state,)


# ============================================================================ sampling and search
class TTSVAR_SampleScales:
    DESCRIPTION = (
        "Samples the next scales of every candidate, up to (not including) 'until_scale'. One progress step "
        "per scale; Cancel stops at the next scale. until_scale = 0 stops at the next filter point of the "
        "schedule (the next scale after which it keeps fewer candidates), so one chain 'Sample (0) -> filter' "
        "per drop works for the tts-var schedule at every resolution (7, 10, 12 or 13 scales); -1 samples "
        "through the last scale."
    )
    CATEGORY = SAMPLING
    RETURN_TYPES = (STATE,)
    RETURN_NAMES = ("state",)
    OUTPUT_TOOLTIPS = ("A new state with more scales sampled (the input state is unchanged).",)
    FUNCTION = "sample"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "state": (STATE, tip("The state to continue.")),
                "until_scale": ("INT", tip("Exclusive end scale index (3 = sample through scale 2). 0 = up to and including the next scale where the schedule drops candidates (the next filter point); -1 = through the last scale.", default=0, min=-1, max=64)),
            }
        }

    @guarded("TTS-VAR Sample Scales")
    def sample(self, state, until_scale):
        from ttsvar.sampler import sample_scales

        _check_state(state)
        total = int(state.num_scales)
        if state.finished:
            raise InputError("state", f"all {total} scales are already sampled; connect this state to Select Best or Decode instead.")
        until = next_stop(state, int(until_scale))
        if not state.next_scale < until <= total:
            raise InputError(
                "until_scale",
                f"is {until_scale}, but the state has sampled scales 0..{state.next_scale - 1} of {total} "
                f"(next is {state.next_scale}); choose a value in {state.next_scale + 1}..{total}, 0 for the next "
                "filter point, or -1 for all.",
            )
        bridge.load_models([getattr(state, "model", None)])
        on_scale = bridge.scale_callback(total, int(state.next_scale), preview=_preview_pil)
        with blame("state"):
            return (sample_scales(state, until=until, on_scale=on_scale),)


def next_stop(state, until_scale: int) -> int:
    """Resolve the until_scale widget: -1 = all scales, 0 = after the next drop scale (or all)."""
    total = int(state.num_scales)
    if until_scale == -1:
        return total
    if until_scale == 0:
        drops = [k for k in state.schedule.drop_scales() if k >= state.next_scale]
        return drops[0] + 1 if drops else total
    return until_scale


def _preview_pil(state):
    """A small grid of the current candidates for ComfyUI's live preview."""
    from ttsvar.decode import decode_images
    from PIL import Image

    imgs = decode_images(state, size=128, limit=4)
    b, _, h, w = imgs.shape
    grid = imgs.permute(0, 2, 3, 1).clamp(0, 1).mul(255).byte().numpy()
    canvas = Image.new("RGB", (w * b, h))
    for i in range(b):
        canvas.paste(Image.fromarray(grid[i]), (i * w, 0))
    return canvas


def _keep(keep: int):
    return None if int(keep) == 0 else int(keep)


def _check_filterable(state, keep):
    _check_state(state)
    if state.next_scale == 0:
        raise InputError("state", "no scale has been sampled yet; put a TTS-VAR Sample Scales node before this filter.")
    if keep and keep > state.num_candidates:
        raise InputError("keep", f"is {keep} but the state has only {state.num_candidates} candidates.")


class TTSVAR_ClusterFilter:
    DESCRIPTION = (
        "Keeps diverse candidates: decodes the intermediate images, embeds them with the feature extractor "
        "and keeps the candidate nearest each of 'keep' K-Means++ centres (no reward). The paper uses it at "
        "the early scales (after 2 and 5)."
    )
    CATEGORY = SEARCH
    RETURN_TYPES = (STATE,)
    RETURN_NAMES = ("state",)
    OUTPUT_TOOLTIPS = ("A new state with the kept candidates.",)
    FUNCTION = "filter"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "state": (STATE, tip("A state after some sampled scales.")),
                "feature_extractor": (FEATURES, tip("From TTS-VAR Load Feature Extractor (DINOv2 with PCA in the paper).")),
                "keep": ("INT", tip("How many candidates to keep; 0 = what the schedule says after the last sampled scale.", default=0, min=0, max=4096)),
                "seed": ("INT", tip("K-Means++ initialisation seed.", default=0, min=0, max=MAX_SEED, control_after_generate=True)),
            },
            "optional": {
                "decode_at_model_size": ("BOOLEAN", tip("Decode the intermediate images at the size the feature extractor reads (about 20x less VAE work at 1024², slightly different images) instead of at full resolution.", default=True)),
            },
        }

    @guarded("TTS-VAR Cluster Filter")
    def filter(self, state, feature_extractor, keep, seed, decode_at_model_size=True):
        from ttsvar.search.filters import cluster_filter

        _check_filterable(state, int(keep))
        if not hasattr(feature_extractor, "features"):
            raise InputError("feature_extractor", f"expected a {FEATURES}, got {type(feature_extractor).__name__}.")
        bridge.load_models([getattr(state, "model", None), feature_extractor])
        bridge.check_interrupt()
        with blame("keep"):
            return (cluster_filter(state, feature_extractor, keep=_keep(keep), seed=int(seed), preview_size=bool(decode_at_model_size)),)


class TTSVAR_RewardResample:
    DESCRIPTION = (
        "Resamples candidates by reward: potential P from the reward history (value = current reward, "
        "diff = change since the last scored scale, max, sum), then draws 'keep' candidates with replacement "
        "with weights exp(λ·P). The paper uses value with λ=10 after scales 6 and 9."
    )
    CATEGORY = SEARCH
    RETURN_TYPES = (STATE,)
    RETURN_NAMES = ("state",)
    OUTPUT_TOOLTIPS = ("A new state with the resampled candidates (duplicates possible).",)
    FUNCTION = "resample"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "state": (STATE, tip("A state after some sampled scales.")),
                "reward_model": (REWARD, tip("From TTS-VAR Load Reward Model or Combine Rewards.")),
                "potential": (list(POTENTIALS), tip("How rewards become the resampling potential: value, diff, max or sum over scored scales.", default="value")),
                "lam": ("FLOAT", tip("λ, the sharpness of exp(λ·P): 0 = uniform, large = greedy (paper: 10).", default=10.0, min=0.0, max=1000.0, step=0.1)),
                "keep": ("INT", tip("How many candidates to draw; 0 = what the schedule says after the last sampled scale.", default=0, min=0, max=4096)),
            },
            "optional": {
                "decode_at_model_size": ("BOOLEAN", tip("Decode the intermediate images at the size the reward model reads (about 20x less VAE work at 1024², slightly different images) instead of at full resolution.", default=True)),
            },
        }

    @guarded("TTS-VAR Reward Resample")
    def resample(self, state, reward_model, potential, lam, keep, decode_at_model_size=True):
        from ttsvar.search.filters import reward_resample

        _check_filterable(state, 0)
        if not hasattr(reward_model, "score"):
            raise InputError("reward_model", f"expected a {REWARD}, got {type(reward_model).__name__}.")
        bridge.load_models([getattr(state, "model", None), reward_model])
        bridge.check_interrupt()
        with blame("potential"):
            return (reward_resample(state, reward_model, potential=potential, lam=float(lam), keep=_keep(keep), preview_size=bool(decode_at_model_size)),)


class TTSVAR_SelectBest:
    DESCRIPTION = (
        "Scores the finished candidates with the reward model and keeps the best k (Best-of-N's final step). "
        "After a run the node shows the lineage: which candidates survived each filter, with rewards and thumbnails."
    )
    CATEGORY = SEARCH
    RETURN_TYPES = (STATE,)
    RETURN_NAMES = ("state",)
    OUTPUT_TOOLTIPS = ("A new state with the k best candidates, best first.",)
    FUNCTION = "select"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "state": (STATE, tip("A state whose scales are all sampled.")),
                "reward_model": (REWARD, tip("The reward that ranks the final candidates.")),
                "k": ("INT", tip("How many of the best candidates to keep.", default=1, min=1, max=4096)),
            }
        }

    @guarded("TTS-VAR Select Best")
    def select(self, state, reward_model, k):
        from ttsvar.search.filters import select_best

        _check_state(state)
        if not state.finished:
            raise InputError("state", f"only {state.next_scale} of {state.num_scales} scales are sampled; add TTS-VAR Sample Scales with until_scale = -1 first.")
        if int(k) > state.num_candidates:
            raise InputError("k", f"is {k} but the state has only {state.num_candidates} candidates.")
        if not hasattr(reward_model, "score"):
            raise InputError("reward_model", f"expected a {REWARD}, got {type(reward_model).__name__}.")
        bridge.load_models([getattr(state, "model", None), reward_model])
        with blame("k"):
            out = select_best(state, reward_model, k=int(k))
        return {"ui": _lineage_ui(out, None, "Select Best"), "result": (out,)}


class TTSVAR_Decode:
    DESCRIPTION = "Decodes the finished candidates of a state into an IMAGE batch (one image per candidate)."
    CATEGORY = SAMPLING
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    OUTPUT_TOOLTIPS = ("IMAGE batch [B,H,W,3], one per candidate.",)
    FUNCTION = "decode"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"state": (STATE, tip("A state whose scales are all sampled (usually after Select Best)."))}}

    @guarded("TTS-VAR Decode")
    def decode(self, state):
        from ttsvar.decode import decode_images

        _check_state(state)
        if not state.finished:
            raise InputError(
                "state",
                f"only {state.next_scale} of {state.num_scales} scales are sampled; add TTS-VAR Sample Scales with "
                "until_scale = -1, or use TTS-VAR Preview Candidates for intermediate images.",
            )
        bridge.load_models([getattr(state, "model", None)])
        images = decode_images(state)
        return {"ui": _lineage_ui(state, images, "Decode"), "result": (to_comfy_image(images),)}


class TTSVAR_PreviewCandidates:
    DESCRIPTION = "Decodes a state's current candidates (intermediate images after the last sampled scale) as an IMAGE batch."
    CATEGORY = SAMPLING
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    OUTPUT_TOOLTIPS = ("IMAGE batch of the current candidates.",)
    FUNCTION = "preview"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "state": (STATE, tip("Any state with at least one sampled scale.")),
                "size": ("INT", tip("Longest side of the preview in pixels; 0 = the final resolution.", default=256, min=0, max=4096, step=8)),
            }
        }

    @guarded("TTS-VAR Preview Candidates")
    def preview(self, state, size):
        from ttsvar.decode import decode_images

        _check_state(state)
        if state.next_scale == 0:
            raise InputError("state", "no scale has been sampled yet; put a TTS-VAR Sample Scales node before the preview.")
        bridge.load_models([getattr(state, "model", None)])
        with blame("size"):
            images = decode_images(state, size=int(size) or None)
        return (to_comfy_image(images),)


# ============================================================================ all in one
class TTSVAR_Sampler:
    DESCRIPTION = (
        "All-in-one TTS-VAR sampler: runs a whole strategy (tts-var: clustering + reward resampling with the "
        "paper's schedule; best-of-n; importance-sampling; raw) and returns the selected image(s)."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE", STATE)
    RETURN_NAMES = ("images", "state")
    OUTPUT_TOOLTIPS = ("The selected image(s).", "The final state (for Preview Candidates, Decode or Select Best).")
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": (MODEL, tip("From TTS-VAR Load Infinity Model.")),
                "condition": (CONDITION, tip("From TTS-VAR Encode Prompt.")),
                "strategy": (list(STRATEGIES), tip("tts-var (paper), best-of-n, importance-sampling (resample at every scale) or raw (one image).", default="tts-var")),
                "n": ("INT", tip("N: tts-var starts with 8·N candidates and ends with N; best-of-n keeps N throughout.", default=1, min=1, max=64)),
                "width": ("INT", tip("Image width; snapped to the nearest Infinity template.", default=1024, min=64, max=4096, step=16)),
                "height": ("INT", tip("Image height; snapped to the nearest Infinity template.", default=1024, min=64, max=4096, step=16)),
                "cfg": ("FLOAT", tip("Classifier-free guidance scale (paper: 3).", default=3.0, min=0.0, max=30.0, step=0.1)),
                "tau": ("FLOAT", tip("Sampling temperature (paper: 0.5).", default=0.5, min=0.01, max=5.0, step=0.01)),
                "top_p": ("FLOAT", tip("Nucleus sampling threshold (paper: 0.97).", default=0.97, min=0.01, max=1.0, step=0.01)),
                "seed": ("INT", tip("Seed.", default=0, min=0, max=MAX_SEED, control_after_generate=True)),
                "potential": (list(POTENTIALS), tip("Resampling potential (value, diff, max, sum).", default="value")),
                "lam": ("FLOAT", tip("λ of the resampling weights exp(λ·P) (paper: 10).", default=10.0, min=0.0, max=1000.0, step=0.1)),
            },
            "optional": {
                "reward_model": (REWARD, tip("Needed by every strategy except raw.")),
                "feature_extractor": (FEATURES, tip("Needed by tts-var (cluster filter).")),
                "decode_at_model_size": ("BOOLEAN", tip("Filters look at intermediate images decoded at the size their model reads (about 20x less VAE work at 1024², slightly different images) instead of at full resolution.", default=True)),
            },
        }

    @guarded("TTS-VAR Sampler")
    def run(self, model, condition, strategy, n, width, height, cfg, tau, top_p, seed, potential, lam, reward_model=None,
            feature_extractor=None, decode_at_model_size=True):
        from ttsvar.infinity.grids import resolve_grid
        from ttsvar.pipelines import run_strategy

        if strategy != "raw" and reward_model is None:
            raise InputError("reward_model", f"strategy '{strategy}' needs a reward model; connect TTS-VAR Load Reward Model.")
        if strategy == "tts-var" and feature_extractor is None:
            raise InputError("feature_extractor", "strategy 'tts-var' needs a feature extractor for its cluster filter; connect TTS-VAR Load Feature Extractor.")
        with blame("width"):
            grid = resolve_grid(width=int(width), height=int(height))
        bridge.load_models([model, reward_model, feature_extractor])
        on_scale = bridge.scale_callback(grid.num_scales, 0, preview=_preview_pil)
        with blame("strategy"):
            result = run_strategy(
                model, condition, strategy=strategy, n=int(n), grid=grid, reward=reward_model,
                extractor=feature_extractor, cfg=float(cfg), tau=float(tau), top_p=float(top_p), seed=int(seed),
                potential=potential, lam=float(lam), on_scale=on_scale, fast_filters=bool(decode_at_model_size),
            )
        return {"ui": _lineage_ui(result.state, result.images, "Sampler"), "result": (to_comfy_image(result.images), result.state)}


NODES = {
    "TTSVAR_EncodePrompt": (TTSVAR_EncodePrompt, "TTS-VAR Encode Prompt"),
    "TTSVAR_BatchSchedule": (TTSVAR_BatchSchedule, "TTS-VAR Batch Schedule"),
    "TTSVAR_StartState": (TTSVAR_StartState, "TTS-VAR Start State"),
    "TTSVAR_SampleScales": (TTSVAR_SampleScales, "TTS-VAR Sample Scales"),
    "TTSVAR_ClusterFilter": (TTSVAR_ClusterFilter, "TTS-VAR Cluster Filter"),
    "TTSVAR_RewardResample": (TTSVAR_RewardResample, "TTS-VAR Reward Resample"),
    "TTSVAR_SelectBest": (TTSVAR_SelectBest, "TTS-VAR Select Best"),
    "TTSVAR_Decode": (TTSVAR_Decode, "TTS-VAR Decode"),
    "TTSVAR_PreviewCandidates": (TTSVAR_PreviewCandidates, "TTS-VAR Preview Candidates"),
    "TTSVAR_Sampler": (TTSVAR_Sampler, "TTS-VAR Sampler (all-in-one)"),
}
