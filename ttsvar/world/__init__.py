"""A synthetic text-to-image world where correctness is known exactly (numpy, Pillow, scipy; no torch).

Scenes hold one to four flat shapes (circle, square, triangle, wedge: a triangle pointing down) in
six colours on a plain, gradient or gently textured background. Prompts follow GenEval's six categories and
its metadata format (``single_object``, ``two_object``, ``counting``, ``colors``, ``position``,
``color_attr``), e.g. "a photo of a red circle left of a blue square". For every prompt the world
can draw a matching scene (``sample_scene``) and render it at any size (``render``); it can say
whether a scene satisfies a prompt from its ground truth (``satisfies``) and whether an *image*
does, from its pixels alone (``check``), by GenEval's rules. ``training_pairs`` streams
(image, caption) pairs for training a model on the world; ``prompt_set`` makes held evaluation
sets, ``write_prompts`` / ``read_prompts`` store them as GenEval's ``metadata.jsonl`` lines;
``hard_negative`` turns a prompt into a near miss (one attribute changed) for contrastive training.
"""

from .checker import CheckResult, DetectedObject, check, check_objects, detect
from .prompts import (all_prompts, hard_negative, prompt_set, read_prompts, sample_prompt, validate_metadata,
                      write_prompts)
from .render import render
from .rules import relations
from .scenes import (Background, Scene, SceneObject, TrainingSample, clear_relation, sample_background, sample_scene,
                     satisfies, training_pairs, training_sample)
from .vocab import BACKGROUNDS, COLORS, COUNTS, MAX_CAPTION_WORDS, NUMBER_WORDS, RELATIONS, SHAPES, TAGS, VOCABULARY

__all__ = [
    "BACKGROUNDS", "COLORS", "COUNTS", "MAX_CAPTION_WORDS", "NUMBER_WORDS", "RELATIONS", "SHAPES", "TAGS", "VOCABULARY",
    "Background", "CheckResult", "DetectedObject", "Scene", "SceneObject", "TrainingSample",
    "all_prompts", "check", "check_objects", "clear_relation", "detect", "hard_negative", "prompt_set", "read_prompts",
    "relations",
    "render", "sample_background", "sample_prompt", "sample_scene", "satisfies", "training_pairs", "training_sample",
    "validate_metadata", "write_prompts",
]
