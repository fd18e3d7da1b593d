"""Pipeline nodes: prompt -> schedule -> state -> scales -> filters -> selection -> image.

Every node is a thin call into the library. States are immutable: a node never changes the state
it receives (ComfyUI hands the same cached object to every consumer and to later runs); it
returns a new one.
"""

from __future__ import annotations

from ttsvar.infinity.grids import ASPECT_TEMPLATES, LATENT_STRIDE, PN_CHOICES, PN_SCALES
from ttsvar.schedule import PRESETS

from . import comfy_bridge as bridge
from . import preflight
from .common import (
    CATEGORY, CONDITION, FEATURES, MODEL, POTENTIALS, REWARD, SCHEDULE, STATE, STRATEGIES, TEXT_ENCODER,
    InputError, blame, guarded, tip, to_comfy_image,
)
from .preflight import Shape

SAMPLING = f"{CATEGORY}/sampling"
SEARCH = f"{CATEGORY}/search"
MAX_SEED = 0xFFFFFFFFFFFFFFFF

FROM_SIZE = "from width/height"
PN_AUTO = "auto (from schedule)"


def _aspect_label(t: float) -> str:
    kind = "square" if t == 1.0 else ("portrait" if t > 1.0 else "landscape")
    return f"{t:.3f} ({kind})"


ASPECT_CHOICES = [FROM_SIZE] + [_aspect_label(t) for t in sorted(ASPECT_TEMPLATES)]
#: Final images get thumbnails of this size for the lineage view, up to this many candidates.
FINAL_THUMBNAIL, MAX_THUMBNAILS = 96, 64
#: Every filter step keeps thumbnails of this size of the candidates it looked at (the lineage tree);
#: about 1–3 kB each, so N=8 (64 + 48 + 32 + 16 + 8 candidates) sends a few hundred kB per run.
STEP_THUMBNAIL = 64


def _check_state(state, input_name: str = "state"):
    if state is None or not all(hasattr(state, a) for a in ("num_candidates", "next_scale", "schedule")):
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
        from ttsvar.thumbnails import jpeg_thumbnails

        entry["thumbnails"] = jpeg_thumbnails(images, FINAL_THUMBNAIL)
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


SIZE_TIP = (
    "Requested image {side} in pixels. Width × height pick the pixel budget (0.06M = 256², 0.25M = 512², "
    "0.60M = 768², 1M = 1024²: the number of scales) and width:height the nearest Infinity aspect template; "
    "the node shows the size produced and warns when it differs. Sizes are the model's own: the world model "
    "(16 pixels a token → 4) makes 64×64 at 0.06M."
)


class TTSVAR_StartState:
    DESCRIPTION = (
        "Creates the search state: the model, the prompt, the scale grid, the batch schedule and the sampling "
        "settings. Nothing is sampled yet. The size follows one rule, the same as the all-in-one Sampler's: "
        "width × height pick the pixel budget (the number of scales) and, unless an aspect template is chosen, "
        "the aspect; the schedule must have that many scales, else an error names both (nothing is resized "
        "silently). The node shows the size produced. Before anything is sampled it also checks the nodes "
        "downstream (until_scale, keep, k) against the schedule."
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
                "schedule": (SCHEDULE, tip("From TTS-VAR Batch Schedule; its pn (number of scales) must be the pixel budget width × height ask for.")),
                "width": ("INT", tip(SIZE_TIP.format(side="width"), default=1024, min=64, max=4096, step=16)),
                "height": ("INT", tip(SIZE_TIP.format(side="height"), default=1024, min=64, max=4096, step=16)),
                "aspect": (ASPECT_CHOICES, tip("Aspect template h/w; 'from width/height' picks the one nearest to height/width. A template sets only the shape: width × height still pick the pixel budget.", default=FROM_SIZE)),
                "pn": ([PN_AUTO] + list(PN_CHOICES), tip("Pixel budget (number of scales): auto = the schedule's, which must be the one width × height ask for; a value here must agree with both (it is a check, it never changes the size).", default=PN_AUTO)),
                "cfg": ("FLOAT", tip("Classifier-free guidance scale (paper: 3).", default=3.0, min=0.0, max=30.0, step=0.1)),
                "tau": ("FLOAT", tip("Sampling temperature (paper: 0.5; lower = safer, less diverse).", default=0.5, min=0.01, max=5.0, step=0.01)),
                "top_p": ("FLOAT", tip("Nucleus sampling threshold (paper: 0.97; 1 = off). As the official Infinity sampler, the more likely value of each bit is always kept, so below 0.5 each bit takes its majority value.", default=0.97, min=0.01, max=1.0, step=0.01)),
                "seed": ("INT", tip("Seed: randomness derives from (seed, scale, candidate), so results do not depend on how the graph is split.", default=0, min=0, max=MAX_SEED, control_after_generate=True)),
            },
            "optional": {
                "cfg_insertion_layer": ("INT", tip("Official Infinity option: the layer where CFG is applied to logits (0 = at the output).", default=0, min=-64, max=64)),
            },
            "hidden": {"prompt": "PROMPT", "unique_id": "UNIQUE_ID"},
        }

    @guarded("TTS-VAR Start State")
    def start(self, model, condition, schedule, width, height, aspect, pn, cfg, tau, top_p, seed, cfg_insertion_layer=0,
              prompt=None, unique_id=None):
        from ttsvar.sampler import start_state

        if not hasattr(schedule, "sizes"):
            raise InputError("schedule", f"expected a {SCHEDULE}, got {type(schedule).__name__}.")
        template = None if aspect == FROM_SIZE else float(aspect.split()[0])
        stride = pixels_per_token(model)
        grid = requested_grid(int(width), int(height), template, stride)
        if pn != PN_AUTO and pn != grid.pn:
            raise InputError(
                "pn",
                f"is {pn} ({_pixels(grid.template, pn, stride)}), but width × height = {width}×{height} ask for "
                f"pn {grid.pn} ({_pixels(grid.template, grid.pn, stride)}). Set pn to '{PN_AUTO}', or width and height to "
                f"{_pixels(grid.template, pn, stride)}; the size is never changed silently.",
            )
        if len(schedule.sizes) != grid.num_scales:
            raise InputError("schedule", _schedule_mismatch(schedule, width, height, grid, stride))
        preflight.check_downstream(prompt, unique_id, Shape(tuple(schedule.sizes), 0, schedule.sizes[0]), bridge.is_output_node)
        bridge.load_models([model])
        with blame("condition"):
            state = start_state(
                model, condition, schedule, grid,
                cfg=float(cfg), tau=float(tau), top_p=float(top_p), seed=int(seed),
                cfg_insertion_layer=int(cfg_insertion_layer),
            )
        report = size_report(int(width), int(height), grid, template is not None, stride)
        return {"ui": {"ttsvar_size": [report]}, "result": (state,)}


def pixels_per_token(model) -> int:
    """Pixels per token side of `model`'s images: 16 for Infinity 2B and 8B, 4 for the world model."""
    from ttsvar.infinity.grids import resolve_grid

    grid = resolve_grid(pn="0.06M")
    return model.pixel_size(grid)[0] // grid.final_grid[0]


def requested_grid(width: int, height: int, template: float | None = None, stride: int = LATENT_STRIDE):
    """The scale grid for a requested size, by the one rule of Start State and the Sampler: the
    nearest pixel budget to width × height (in the model's pixels: `stride` per token side), the
    aspect template nearest to height/width (or the given one). The library's log warning about
    an untrained aspect is shown on the node instead."""
    import warnings

    from ttsvar.infinity.grids import resolve_grid

    to_infinity = LATENT_STRIDE / stride
    with warnings.catch_warnings(), blame("width"):
        warnings.simplefilter("ignore")
        return resolve_grid(width=round(width * to_infinity), height=round(height * to_infinity), aspect=template)


def _produced(grid, stride: int) -> tuple[int, int]:
    """(width, height) of the images `grid` makes with `stride` pixels per token side."""
    h, w = grid.final_grid
    return w * stride, h * stride


def _pixels(template: float, pn: str, stride: int) -> str:
    from ttsvar.infinity.grids import resolve_grid

    w, h = _produced(resolve_grid(aspect=template, pn=pn), stride)
    return f"{w}×{h}"


def _schedule_mismatch(schedule, width: int, height: int, grid, stride: int) -> str:
    scales = len(schedule.sizes)
    by_count = {v: k for k, v in PN_SCALES.items()}
    sched_pn = by_count.get(scales)
    asked = (f"width × height = {width}×{height} ask for pn {grid.pn} ({grid.num_scales} scales, "
             f"{_pixels(grid.template, grid.pn, stride)})")
    if sched_pn is None:
        return f"has {scales} scales, but {asked}; give it {grid.num_scales} counts (Batch Schedule pn {grid.pn})."
    return (
        f"has {scales} scales (Batch Schedule pn {sched_pn}), but {asked}. Set the Batch Schedule's pn to {grid.pn}, "
        f"or width and height to {_pixels(grid.template, sched_pn, stride)}; the size is never changed silently."
    )


def size_report(width: int, height: int, grid, template_chosen: bool = False, stride: int = LATENT_STRIDE) -> dict:
    """What the node shows: the size produced and, when it differs from the request, a note; a
    warning when the aspect had to move more than 5% (the library's threshold for its log warning)."""
    out_w, out_h = _produced(grid, stride)
    report = {
        "requested": [width, height], "produced": [out_w, out_h], "pn": grid.pn, "scales": grid.num_scales,
        "aspect": grid.template, "text": f"{out_w}×{out_h} px · {grid.num_scales} scales (pn {grid.pn}) · aspect {grid.template:.3f}",
        "note": None, "warning": None,
    }
    if (out_w, out_h) != (width, height):
        report["note"] = f"requested {width}×{height}, produced {out_w}×{out_h}" + (" (aspect template chosen)" if template_chosen else "")
        wanted = height / width
        if not template_chosen and abs(grid.template - wanted) > 0.05 * wanted:
            report["warning"] = (
                f"{width}×{height} (h/w {wanted:.3g}) is not a shape Infinity was trained on: snapped to the nearest "
                f"template {grid.template:.3f}, {out_w}×{out_h}."
            )
    return report


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
            },
            "optional": {
                "reward_model": (REWARD, tip("Optional (paper-defined potentials): score every scale this node samples and add it to the reward history, so Reward Resample's diff/max/sum run over every scale as the paper defines them. Not connected (default, as the official code): the history holds only the scales a resample scored. Costs a full-resolution decode and a reward call per candidate per scale.")),
            },
        }

    @guarded("TTS-VAR Sample Scales")
    def sample(self, state, until_scale, reward_model=None):
        from ttsvar.sampler import sample_scales
        from ttsvar.search.filters import sample_scoring_each_scale

        until = preflight.sample_until(Shape.of(_check_state(state)), int(until_scale))
        if reward_model is not None and not hasattr(reward_model, "score"):
            raise InputError("reward_model", f"expected a {REWARD}, got {type(reward_model).__name__}.")
        bridge.load_models([getattr(state, "model", None), reward_model])
        on_scale = bridge.scale_callback(int(state.num_scales), int(state.next_scale), preview=_preview_pil)
        with blame("state"):
            if reward_model is not None:
                return (sample_scoring_each_scale(state, reward_model, until, on_scale=on_scale),)
            return (sample_scales(state, until=until, on_scale=on_scale),)


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


class TTSVAR_ClusterFilter:
    DESCRIPTION = (
        "Keeps diverse candidates: decodes the intermediate images, embeds them with the feature extractor "
        "and keeps the candidate nearest each of 'keep' K-Means++ centres (no reward). The paper uses it at "
        "the early scales (after 2 and 5). Defaults are the official code's: full-resolution 8-bit previews, "
        "KMeans(random_state=0) with one k-means++ run on float32 features."
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
                "seed": ("INT", tip("K-Means' random_state. 0 (default) = the official code's fixed value, independent of the generation seed; other values are an option.", default=0, min=0, max=MAX_SEED, control_after_generate="fixed")),
            },
            "optional": {
                "decode_at_model_size": ("BOOLEAN", tip("Fast filters. Off (default) = the official TTS-VAR behaviour: the intermediate images are decoded at full resolution and quantised to 8 bits. On = decoded at about the size the feature extractor reads: about 20x less VAE work at 1024², slightly different images, which can change which candidates are kept.", default=False)),
            },
        }

    @guarded("TTS-VAR Cluster Filter")
    def filter(self, state, feature_extractor, keep, seed, decode_at_model_size=False):
        from ttsvar.search.filters import cluster_filter

        keep = preflight.filter_keep(Shape.of(_check_state(state)), int(keep))
        if not hasattr(feature_extractor, "features"):
            raise InputError("feature_extractor", f"expected a {FEATURES}, got {type(feature_extractor).__name__}.")
        bridge.load_models([getattr(state, "model", None), feature_extractor])
        bridge.check_interrupt()
        with blame("keep"):
            return (cluster_filter(state, feature_extractor, keep=keep, seed=int(seed),
                                   fast_filters=bool(decode_at_model_size), thumbnails=STEP_THUMBNAIL),)


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
                "potential": (list(POTENTIALS), tip("How rewards become the resampling potential: value (the current reward; the official code's and the paper's choice), diff (change since the previous scored scale), max or sum over the scored scales. Scored scales are the resample scales, plus every scale a Sample Scales node with a reward model sampled: connect one from scale 0 on for the paper's definitions over every scale.", default="value")),
                "lam": ("FLOAT", tip("λ, the sharpness of exp(λ·P): 0 = uniform, large = greedy (paper: 10).", default=10.0, min=0.0, max=1000.0, step=0.1)),
                "keep": ("INT", tip("How many candidates to draw; 0 = what the schedule says after the last sampled scale.", default=0, min=0, max=4096)),
            },
            "optional": {
                "decode_at_model_size": ("BOOLEAN", tip("Fast filters. Off (default) = the official TTS-VAR behaviour: the intermediate images are decoded at full resolution and quantised to 8 bits. On = decoded at about the size the reward model reads: about 20x less VAE work at 1024², slightly different images, which can change which candidates are kept.", default=False)),
            },
        }

    @guarded("TTS-VAR Reward Resample")
    def resample(self, state, reward_model, potential, lam, keep, decode_at_model_size=False):
        from ttsvar.search.filters import reward_resample

        keep = preflight.filter_keep(Shape.of(_check_state(state)), int(keep))
        if not hasattr(reward_model, "score"):
            raise InputError("reward_model", f"expected a {REWARD}, got {type(reward_model).__name__}.")
        bridge.load_models([getattr(state, "model", None), reward_model])
        bridge.check_interrupt()
        with blame("potential"):
            return (reward_resample(state, reward_model, potential=potential, lam=float(lam), keep=keep,
                                    fast_filters=bool(decode_at_model_size), thumbnails=STEP_THUMBNAIL),)


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

        preflight.select_k(Shape.of(_check_state(state)), int(k))
        if not hasattr(reward_model, "score"):
            raise InputError("reward_model", f"expected a {REWARD}, got {type(reward_model).__name__}.")
        bridge.load_models([getattr(state, "model", None), reward_model])
        with blame("k"):
            out = select_best(state, reward_model, k=int(k), thumbnails=STEP_THUMBNAIL)
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

        preflight.decodable(Shape.of(_check_state(state)))
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

        preflight.previewable(Shape.of(_check_state(state)))
        bridge.load_models([getattr(state, "model", None)])
        with blame("size"):
            images = decode_images(state, size=int(size) or None)
        return (to_comfy_image(images),)


# ============================================================================ all in one
SAMPLER_OOM_ADVICE = (
    "ran out of memory. Lower n, use strategy tts-var instead of best-of-n at the same n (fewer candidates "
    "at the costly scales), a smaller width/height, or free other models (Unload models) and try again."
)

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
                "width": ("INT", tip(SIZE_TIP.format(side="width"), default=1024, min=64, max=4096, step=16)),
                "height": ("INT", tip(SIZE_TIP.format(side="height"), default=1024, min=64, max=4096, step=16)),
                "cfg": ("FLOAT", tip("Classifier-free guidance scale (paper: 3).", default=3.0, min=0.0, max=30.0, step=0.1)),
                "tau": ("FLOAT", tip("Sampling temperature (paper: 0.5).", default=0.5, min=0.01, max=5.0, step=0.01)),
                "top_p": ("FLOAT", tip("Nucleus sampling threshold (paper: 0.97). As the official Infinity sampler, the more likely value of each bit is always kept, so below 0.5 each bit takes its majority value.", default=0.97, min=0.01, max=1.0, step=0.01)),
                "seed": ("INT", tip("Seed.", default=0, min=0, max=MAX_SEED, control_after_generate=True)),
                "potential": (list(POTENTIALS), tip("Resampling potential: value (official), diff, max or sum over the scored scales (see score_from_scale).", default="value")),
                "lam": ("FLOAT", tip("λ of the resampling weights exp(λ·P) (paper: 10).", default=10.0, min=0.0, max=1000.0, step=0.1)),
            },
            "optional": {
                "reward_model": (REWARD, tip("Needed by every strategy except raw.")),
                "feature_extractor": (FEATURES, tip("Needed by tts-var (cluster filter).")),
                "decode_at_model_size": ("BOOLEAN", tip("Fast filters. Off (default) = the official TTS-VAR behaviour: the intermediate images are decoded at full resolution and quantised to 8 bits. On = decoded at about the size the filter's model reads: about 20x less VAE work at 1024², slightly different images, which can change which candidates are kept.", default=False)),
                "score_from_scale": ("INT", tip("Paper-defined potentials: also score every scale from this index on (0 = every scale, the paper's DIFF/MAX/SUM), so the potential runs over all of them. -1 (default, as the official code) = only the scales a filter scores. Each extra scale costs a full-resolution decode and a reward call per candidate.", default=-1, min=-1, max=64)),
            },
            "hidden": {"prompt": "PROMPT", "unique_id": "UNIQUE_ID"},
        }

    @guarded("TTS-VAR Sampler", oom_advice=SAMPLER_OOM_ADVICE)
    def run(self, model, condition, strategy, n, width, height, cfg, tau, top_p, seed, potential, lam, reward_model=None,
            feature_extractor=None, decode_at_model_size=False, score_from_scale=-1, prompt=None, unique_id=None):
        from ttsvar.pipelines import plan, run_strategy

        if strategy != "raw" and reward_model is None:
            raise InputError("reward_model", f"strategy '{strategy}' needs a reward model; connect TTS-VAR Load Reward Model.")
        if int(score_from_scale) >= 0 and reward_model is None:
            raise InputError("reward_model", "score_from_scale scores every scale from there on: connect TTS-VAR Load Reward Model (or set it to -1).")
        if strategy == "tts-var" and feature_extractor is None:
            raise InputError("feature_extractor", "strategy 'tts-var' needs a feature extractor for its cluster filter; connect TTS-VAR Load Feature Extractor.")
        stride = pixels_per_token(model)
        grid = requested_grid(int(width), int(height), stride=stride)
        if int(score_from_scale) >= grid.num_scales:
            raise InputError("score_from_scale", f"is {score_from_scale}, but this resolution has scales 0..{grid.num_scales - 1}; use -1 to score only where a filter scores.")
        with blame("strategy"):
            schedule, _ = plan(strategy, int(n), grid.num_scales)
        # the state output holds the one selected candidate, every scale sampled
        preflight.check_downstream(prompt, unique_id, Shape(schedule.sizes, grid.num_scales, 1), bridge.is_output_node)
        bridge.load_models([model, reward_model, feature_extractor])
        on_scale = bridge.scale_callback(grid.num_scales, 0, preview=_preview_pil)
        with blame("strategy"):
            result = run_strategy(
                model, condition, strategy=strategy, n=int(n), grid=grid, reward=reward_model,
                extractor=feature_extractor, cfg=float(cfg), tau=float(tau), top_p=float(top_p), seed=int(seed),
                potential=potential, lam=float(lam), on_scale=on_scale, fast_filters=bool(decode_at_model_size),
                score_from=None if int(score_from_scale) < 0 else int(score_from_scale),
                thumbnails=STEP_THUMBNAIL,
            )
        ui = {**_lineage_ui(result.state, result.images, "Sampler"), "ttsvar_size": [size_report(int(width), int(height), grid, stride=stride)]}
        return {"ui": ui, "result": (to_comfy_image(result.images), result.state)}


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
