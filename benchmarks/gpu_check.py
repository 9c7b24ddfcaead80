"""GPU checks in one short run: scoring speed on a CUDA device and GPU-vs-CPU agreement.

Run: ``benchmarks/gpu_check.sh`` (or ``.venv/bin/python benchmarks/gpu_check.py --device cuda``)
on a machine with a GPU and this repository's shipped weights; about 5 minutes, 8 at most.

On the same 64 random dlib150 chips (seeded), printed as ms per image (after one warm-up
batch, the device synchronised before each clock read):

1. DifFIQA at the paper's size: a randomly initialised UNet of width 128 at 112 px, n = 10,
   t = 5, flip (``benchmarks/bench_diffiqa.py``'s configuration, the model the paper's Table 8
   times), in fp32 and bf16;
2. DifFIQA(R) and eDifFIQA with the shipped ``weights/dlib150-cfp`` checkpoints, fp32 and bf16;
3. FR embeddings per second (dlib-torch, batches of 64);
4. GPU vs CPU: the largest |score difference| of DifFIQA (shipped DDPM, n = 1), DifFIQA(R) and
   eDifFIQA in fp32 between ``--device`` and the CPU on the same 64 images.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.core import paths, threads

WEIGHTS = paths.REPO_ROOT / "weights" / "dlib150-cfp"
N_IMAGES = 64


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--images", type=int, default=N_IMAGES)
    args = p.parse_args()
    threads.configure()
    import torch

    from bench.core.registry import create
    from bench.datasets.base import FaceDataset
    from bench.datasets.protocol import PairProtocol
    from bench.diffusion.checkpoint import DDPMCheckpoint, save_checkpoint
    from bench.diffusion.unet import UNet, UNetConfig
    from bench.methods.base import ScoreContext, synchronise

    n = args.images
    chips = (np.random.default_rng(0).random((n, 150, 150, 3)) * 255).astype(np.uint8)

    class Crops:
        def get(self, idx: np.ndarray) -> np.ndarray:
            return chips[idx]

    ds = FaceDataset(name="gpu-check", root=paths.REPO_ROOT, image_ids=[f"{i}.png" for i in range(n)],
                     protocol=PairProtocol(a=np.array([0]), b=np.array([1]), mated=np.array([True])))

    def timed(method: str, device: str, weights: Path, batch: int = 32, **options: object) -> tuple[float, np.ndarray]:
        """ms per image of ``method`` on ``device`` (after a warm-up batch) and its scores."""
        fr = create("fr", "dlib-torch", device=device)
        m = create("method", method, weights=weights, device=device, **options)
        ctx = ScoreContext(dataset=ds, fr=fr, crops=Crops(), device=device, batch_size=batch, progress=False)
        m.score_dataset(np.arange(min(batch, n)), ctx)
        synchronise(device)
        start = time.perf_counter()
        scores = m.score_dataset(np.arange(n), ctx).scores
        synchronise(device)
        return 1000 * (time.perf_counter() - start) / n, scores

    print(f"device {args.device} ({torch.cuda.get_device_name() if args.device.startswith('cuda') else 'cpu'}), "
          f"torch {torch.__version__}, {n} images")
    torch.manual_seed(0)
    config = UNetConfig(width=128, image_size=112, dim_head=32)
    net = UNet(config)
    with tempfile.TemporaryDirectory() as tmp:
        paper = Path(tmp) / "diffiqa_ddpm.pt"
        save_checkpoint(paper, DDPMCheckpoint(config=config, domain="dlib150", crop_size=150, model=net.state_dict(),
                                              ema=net.state_dict()))
        for precision in ("fp32", "bf16"):
            ms, _ = timed("diffiqa", args.device, paper, batch=16, precision=precision)
            print(f"DifFIQA paper size (UNet width 128 at 112 px, {sum(q.numel() for q in net.parameters()) / 1e6:.1f} M "
                  f"params), n = 10, {precision}: {ms:.1f} ms/image")
    for method, file in (("diffiqa-r", "diffiqa_r.pth"), ("ediffiqa", "ediffiqaL.pth")):
        for precision in ("fp32", "bf16"):
            ms, _ = timed(method, args.device, WEIGHTS / file, precision=precision)
            print(f"{method} ({file}), {precision}: {ms:.2f} ms/image")
    fr = create("fr", "dlib-torch", device=args.device)
    fr.embed(chips[:8])
    synchronise(args.device)
    start = time.perf_counter()
    for _ in range(4):
        fr.embed(chips)
    synchronise(args.device)
    print(f"dlib-torch embeddings: {4 * n / (time.perf_counter() - start):.0f} images/s")
    for method, weights, options in (("diffiqa", WEIGHTS / "diffiqa_ddpm.pt", {"repeats": 1}),
                                     ("diffiqa-r", WEIGHTS / "diffiqa_r.pth", {}),
                                     ("ediffiqa", WEIGHTS / "ediffiqaL.pth", {})):
        _, gpu = timed(method, args.device, weights, **options)
        _, cpu = timed(method, "cpu", weights, **options)
        print(f"{method} fp32: max |score({args.device}) - score(cpu)| = {np.abs(gpu - cpu).max():.3e} "
              f"(score range {cpu.min():.4f} .. {cpu.max():.4f})")


if __name__ == "__main__":
    main()
