"""Rate cost of the integer entropy model: train a small latent codec briefly, code held-out latents.

Run once with the float-path package (e.g. PYTHONPATH=<checkout of the float version>) and once with the
integer one, same seeds; `--convert STATE` also codes with float-trained weights put into this package's
codec (conversion without quantisation-aware training). Writes JSON (real rANS bytes and the estimate).

    python benchmarks/bench_int_cost.py --out float.json --save float_state.pt      # float package
    python benchmarks/bench_int_cost.py --out int.json --convert float_state.pt     # integer package
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import vvc_lightning.codec.entropy.latent_codec as lc


def smooth_latent(b: int, c: int, t: int, h: int, w: int, seed: int) -> torch.Tensor:
    """Spatially correlated latents, like a VAE's (low-pass filtered noise, a few units of scale)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, c, t, h + 4, w + 4, generator=g)
    return 4 * torch.nn.functional.avg_pool3d(x, (1, 5, 5), stride=1)


def train(seed: int, steps: int, channels: int) -> lc.LatentCodec:
    """The test suite's recipe: rate + 0.5 * latent MSE, Adam, smooth random latents."""
    torch.manual_seed(seed)
    codec = lc.LatentCodec(channels=channels, transform_blocks=1)
    main = torch.optim.Adam(codec.main_parameters(), lr=2e-3)
    aux = torch.optim.Adam(codec.aux_parameters(), lr=1e-2)
    codec.train()
    for step in range(steps):
        latent = smooth_latent(4, channels, 3, 16, 16, seed=1000 * seed + step)
        out = codec(latent, None)
        rate = -(torch.log2(out.y_likelihoods).sum() + torch.log2(out.z_likelihoods).sum()) / (
            4 * 9 * 128 * 128
        )
        loss = rate + 0.5 * torch.mean((out.latent_hat - latent) ** 2)
        main.zero_grad()
        aux.zero_grad()
        (loss + codec.aux_loss()).backward()
        main.step()
        aux.step()
    codec.eval()
    codec.update_tables(force=True)
    return codec


@torch.no_grad()
def measure(codec: lc.LatentCodec, channels: int) -> dict[str, float]:
    """Real bits, estimated bits and latent MSE on 8 held-out latents (3 x 24 x 24 each)."""
    latent = smooth_latent(8, channels, 3, 24, 24, seed=987654)
    strings, hat = codec.compress(latent, None)
    out = codec(latent, None)
    est = -(torch.log2(out.y_likelihoods).sum() + torch.log2(out.z_likelihoods).sum()).item()
    return {
        "real_bits": 8 * sum(len(s) for s in strings),
        "est_bits": est,
        "mse": torch.mean((hat - latent) ** 2).item(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--channels", type=int, default=16)
    ap.add_argument("--save", help="save the trained state dicts here (torch.save, one per seed)")
    ap.add_argument("--convert", help="also code with the state dicts saved by a --save run")
    args = ap.parse_args()
    result: dict = {"module": lc.__file__, "steps": args.steps, "channels": args.channels, "runs": {}}
    states = {}
    t0 = time.perf_counter()
    for seed in args.seeds:
        codec = train(seed, args.steps, args.channels)
        states[seed] = codec.state_dict()
        result["runs"][str(seed)] = {"trained": measure(codec, args.channels)}
        if args.convert:
            other = lc.LatentCodec(channels=args.channels, transform_blocks=1)
            other.load_state_dict(torch.load(args.convert, weights_only=True)[seed])
            other.eval()
            result["runs"][str(seed)]["converted"] = measure(other, args.channels)
    if args.save:
        torch.save(states, args.save)
    result["seconds"] = time.perf_counter() - t0
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
