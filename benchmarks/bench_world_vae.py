"""How well the world's VAE reconstructs held-out renders: PSNR and the pixel checker's pass rate.

Each held-out prompt gets one scene, rendered at 64×64, encoded, quantised on all seven scales of
`pn 0.06M` (multi-scale BSQ, as the transformer's tokens are), decoded, and checked against its
prompt; the renders themselves are checked too, as the baseline. Weights are loaded with the
normal loader (bf16 file, upcast to float32), as users get them.

    python benchmarks/bench_world_vae.py                       # the committed weights, 500 prompts
    python benchmarks/bench_world_vae.py --weights /tmp/w/vae.safetensors --prompts 200
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ttsvar.infinity.vae import load_vae  # noqa: E402
from ttsvar.world.train_vae import EVAL_SEED, WEIGHTS_NAME, evaluate_reconstruction  # noqa: E402

DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "ttsvar" / "world" / "weights" / WEIGHTS_NAME


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=str(DEFAULT_WEIGHTS))
    parser.add_argument("--prompts", type=int, default=500)
    parser.add_argument("--seed", type=int, default=EVAL_SEED)
    args = parser.parse_args()
    vae = load_vae(args.weights)
    params = sum(p.numel() for p in vae.parameters())
    start = time.perf_counter()
    report = evaluate_reconstruction(vae, n=args.prompts, seed=args.seed)
    print(f"VAE {args.weights}: {params / 1e6:.2f} M parameters, stride {vae.stride}, d = {vae.codebook_dim}")
    print(f"{report['n']} held-out prompts (seed {args.seed}): PSNR {report['psnr']:.2f} dB; checker passes "
          f"{100 * report['pass_rate']:.1f}% of reconstructions, {100 * report['render_pass_rate']:.1f}% of renders "
          f"({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
