"""DifFIQA scoring throughput: batched (many images per UNet/FR batch) vs one image at a time.

Run: ``.venv/bin/python benchmarks/bench_diffiqa.py [--width 16 --size 64 --images 16 --repeats 10]``
(defaults take about a minute on 2 CPU cores; ``--device cuda --width 128 --size 112`` is the
paper's configuration on a GPU).

A randomly initialised UNet of the given width/size and a small convolutional PyTorch FR
stub (both timed inside the method, as in a real run) score synthetic crops with the full
method (t = 5, flip, n repeats). The same images are scored in batches of ``--batch`` (all
copies in one UNet pass, then in passes of one image's 2n copies) and one image at a time,
in the same run; images per second and ratios to one-by-one are printed, with the per-step
runtime breakdown (Table 8 layout) of the fully batched run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bench.core.cards import Card
from bench.core.registry import create
from bench.datasets.base import FaceDataset
from bench.datasets.protocol import PairProtocol
from bench.diffusion.checkpoint import DDPMCheckpoint, save_checkpoint
from bench.diffusion.unet import UNet, UNetConfig
from bench.fr.base import TorchFRModel
from bench.methods.base import ScoreContext


class ConvFR(TorchFRModel):
    """A small conv net standing in for an FR model (4 stride-2 convs, 128-D output)."""

    domain = "bench"

    def __init__(self, device: str) -> None:
        super().__init__(Card(kind="fr", name="conv-stub", entry="benchmark", path=Path("stub.toml"), data={"version": "1"}), device=device)
        torch.manual_seed(0)
        layers: list[nn.Module] = []
        cin = 3
        for cout in (32, 64, 128, 128):
            layers += [nn.Conv2d(cin, cout, 3, 2, 1), nn.BatchNorm2d(cout), nn.PReLU(cout)]
            cin = cout
        self.module = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 128)).to(device).eval()

    def forward_images(self, images: torch.Tensor) -> torch.Tensor:
        return self.module((images - 127.5) / 127.5)


class ArrayCrops:
    def __init__(self, crops: np.ndarray) -> None:
        self.crops = crops

    def get(self, idx: np.ndarray) -> np.ndarray:
        return self.crops[idx]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"], help="UNet precision (official: fp32)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave as is)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = UNetConfig(width=args.width, image_size=args.size, dim_head=max(8, min(32, args.width // 2)))
    net = UNet(config)
    crops = (np.random.default_rng(0).random((args.images, args.size, args.size, 3)) * 255).astype(np.uint8)
    proto = PairProtocol(a=np.array([0]), b=np.array([1]), mated=np.array([True]))
    ds = FaceDataset(name="bench", root=Path("."), image_ids=[f"{i}.png" for i in range(args.images)], protocol=proto)
    fr = ConvFR(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "diffiqa_ddpm.pt"
        save_checkpoint(path, DDPMCheckpoint(config=config, domain="bench", crop_size=args.size, model=net.state_dict(), ema=net.state_dict()))
        results = {}
        copies = 2 * args.repeats
        for label, bs, unet_batch in (("batched", args.batch, 0), (f"batched, UNet passes of {copies}", args.batch, copies),
                                      ("one-by-one", 1, 0)):
            method = create("method", "diffiqa", weights=path, device=args.device, repeats=args.repeats, unet_batch=unet_batch,
                            precision=args.precision)
            ctx = ScoreContext(dataset=ds, fr=fr, crops=ArrayCrops(crops), device=args.device, batch_size=bs, progress=False)
            method.score_dataset(np.arange(min(bs, args.images)), ctx)  # warm-up (allocations, kernels)
            start = time.perf_counter()
            res = method.score_dataset(np.arange(args.images), ctx)
            results[label] = (args.images / (time.perf_counter() - start), res)
    n_params = sum(p.numel() for p in net.parameters())
    print(f"DifFIQA scoring, UNet width {args.width} ({n_params / 1e6:.2f} M params) at {args.size}px, n = {args.repeats}, "
          f"flip, t = 5, {args.images} images, device {args.device}, {args.precision}, {torch.get_num_threads()} threads")
    for label, (ips, _) in results.items():
        ratio = ips / results["one-by-one"][0]
        print(f"  {label:>30}: {ips:8.3f} images/s  ({ratio:.2f}x one-by-one)")
    same = all(np.allclose(r.scores, results["one-by-one"][1].scores, atol=1e-4) for _, r in results.values())
    print(f"  scores equal across batchings (atol 1e-4): {same}")
    print("  runtime breakdown per image, batched (ms, mean ± std over batches):")
    for step, (mean, std) in results["batched"][1].extra["runtime_breakdown"].items():
        print(f"    {step:>14}: {mean:9.2f} ± {std:.2f}")


if __name__ == "__main__":
    main()
