"""Benchmark: our DCGAN training loop against a pytorch/examples-style loop, same data, same run.

- **reference** (pytorch/examples ``dcgan/main.py``): the images as PNG files read by
  ``torchvision.datasets.ImageFolder`` through a ``DataLoader`` (2 workers, Resize(64) + CenterCrop(64) +
  ToTensor + Normalize), fp32, a Sigmoid discriminator with ``BCELoss``, and ``.item()`` on the losses
  and D outputs in every step;
- **ours** (``fashion_pipeline.gan.dcgan``): the uint8 array on the device, normalised per batch, stats
  read once per epoch; on CUDA also bfloat16 autocast, fused Adam, channels_last (and ``--compile``).

Both start from the same initial weights (same seed) and train the thesis's architecture (nz 100,
ngf = ndf = 64, batch 128, Adam 2e-4 / 0.5). Throughput is training images per second, excluding
the first epoch (warm-up: worker start-up, cuDNN autotuning, compilation). Loss curves are compared as
per-epoch means: the reference-vs-ours gap is set against the gap between two of our runs that differ
only in seed, which is the noise level of a GAN's loss curve.

Data: synthetic runway looks (``fashion_pipeline.synthetic``) or ``--data some.npy`` (a training set).
Run: ``.venv/bin/python -m bench.dcgan_throughput [--images 512 --epochs 3 --device auto]``
Writes ``bench/results/dcgan_throughput.json`` and ``.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from fashion_pipeline.common.atomic import write_json, write_text
from fashion_pipeline.common.device import pick_device
from fashion_pipeline.gan import dcgan
from fashion_pipeline.gan.training_sets import square_array

RESULTS = Path(__file__).resolve().parent / "results"


def synthetic_images(count: int, seed: int = 0) -> np.ndarray:
    from fashion_pipeline.synthetic import figures

    rng = np.random.default_rng(seed)
    out = np.empty((count, 64, 64, 3), np.uint8)
    for index in range(count):
        image, _ = figures.render_runway_look(rng, (96, 128), outfit="full" if index % 2 else "separates")
        out[index] = square_array(image.convert("RGB"))
    return out


def write_image_folder(images: np.ndarray, root: Path) -> Path:
    """The layout ImageFolder wants: one class folder of PNG files (lossless, so the same pixels)."""
    folder = root / "images" / "all"
    folder.mkdir(parents=True, exist_ok=True)
    for index, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{index:06d}.png", compress_level=1)
    return root / "images"


def reference_loop(folder: Path, config: dcgan.TrainConfig, device: torch.device, workers: int) -> dict:
    """pytorch/examples dcgan/main.py's loop, kept as written there (fp32, BCELoss, .item() per step)."""
    import torchvision.datasets as dset
    import torchvision.transforms as transforms

    dataset = dset.ImageFolder(root=str(folder), transform=transforms.Compose([
        transforms.Resize(64), transforms.CenterCrop(64), transforms.ToTensor(),
        transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))]))
    dataloader = torch.utils.data.DataLoader(dataset, batch_size=config.batch_size, shuffle=True,
                                             num_workers=workers, persistent_workers=workers > 0)
    reference_config = dcgan.TrainConfig(**{**config.__dict__, "channels_last": False})
    netG, discriminator = dcgan.build_models(reference_config, device)
    netD = nn.Sequential(discriminator, nn.Sigmoid())  # Figure 4.10 exactly: probabilities, not logits
    criterion = nn.BCELoss()
    optimizerD = torch.optim.Adam(netD.parameters(), lr=config.lr, betas=(config.beta1, 0.999))
    optimizerG = torch.optim.Adam(netG.parameters(), lr=config.lr, betas=(config.beta1, 0.999))
    torch.manual_seed(config.seed)
    epochs, times = [], []
    for _ in range(config.epochs):
        started = time.perf_counter()
        sums = np.zeros(5)
        for batch, _labels in dataloader:
            netD.zero_grad()
            real = batch.to(device)
            size = real.size(0)
            label = torch.full((size,), 1.0, device=device)
            output = netD(real)
            errD_real = criterion(output, label)
            errD_real.backward()
            D_x = output.mean().item()
            noise = torch.randn(size, config.nz, 1, 1, device=device)
            fake = netG(noise)
            label.fill_(0.0)
            output = netD(fake.detach())
            errD_fake = criterion(output, label)
            errD_fake.backward()
            D_G_z1 = output.mean().item()
            errD = errD_real + errD_fake
            optimizerD.step()
            netG.zero_grad()
            label.fill_(1.0)
            output = netD(fake)
            errG = criterion(output, label)
            errG.backward()
            D_G_z2 = output.mean().item()
            optimizerG.step()
            sums += (errD.item(), errG.item(), D_x, D_G_z1, D_G_z2)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
        epochs.append(dict(zip(dcgan.STAT_NAMES, (sums / len(dataloader)).tolist())))
    return {"epochs": epochs, "epoch_seconds": times}


def our_loop(images: np.ndarray, config: dcgan.TrainConfig, device: torch.device) -> dict:
    trainer = dcgan._Trainer(images, config, device)
    torch.manual_seed(config.seed)
    epochs, times = [], []
    for _ in range(config.epochs):
        started = time.perf_counter()
        stats, _ = trainer.run_epoch()  # ends with the epoch's one host read, so timing is complete
        times.append(time.perf_counter() - started)
        epochs.append(stats)
    return {"epochs": epochs, "epoch_seconds": times}


def images_per_second(run: dict, count: int) -> float:
    timed = run["epoch_seconds"][1:] or run["epoch_seconds"]
    return count * len(timed) / sum(timed)


def curve_gap(a: dict, b: dict) -> dict:
    """Mean absolute difference of the per-epoch mean losses."""
    return {key: float(np.mean([abs(x[key] - y[key]) for x, y in zip(a["epochs"], b["epochs"])]))
            for key in ("Loss_D", "Loss_G", "D_x")}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=2, help="reference DataLoader workers (its default)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--data", default=None, help="N x 64 x 64 x 3 uint8 .npy instead of synthetic looks")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    device = pick_device(args.device)
    load_at_start = os.getloadavg()[0]
    images = np.load(args.data)[: args.images] if args.data else synthetic_images(args.images)
    config = dcgan.TrainConfig(epochs=args.epochs, batch_size=args.batch_size, compile=args.compile, device=str(device))
    with tempfile.TemporaryDirectory() as workdir:
        folder = write_image_folder(images, Path(workdir))
        print(f"reference loop: {len(images)} images, {args.epochs} epochs on {device}", flush=True)
        reference = reference_loop(folder, config, device, args.workers)
    print("our loop", flush=True)
    ours = our_loop(images, config, device)
    print("our loop, other seed (noise level)", flush=True)
    ours_other_seed = our_loop(images, dcgan.TrainConfig(**{**config.__dict__, "seed": config.seed + 1}), device)
    ref_ips, our_ips = images_per_second(reference, len(images)), images_per_second(ours, len(images))
    gap, noise = curve_gap(reference, ours), curve_gap(ours, ours_other_seed)
    result = {
        "device": str(device), "device_name": torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu",
        "cpu_threads": torch.get_num_threads(), "load_average": load_at_start, "images": len(images), "epochs": args.epochs,
        "batch_size": config.batch_size, "compile": args.compile,
        "reference_images_per_second": ref_ips, "ours_images_per_second": our_ips, "speedup": our_ips / ref_ips,
        "loss_gap_reference_vs_ours": gap, "loss_gap_seed_noise": noise,
        "curves_match_within_noise": all(gap[k] <= 2 * noise[k] + 1e-3 for k in gap),
        "reference": reference, "ours": ours, "ours_other_seed": ours_other_seed,
    }
    # One result per device type (cpu, cuda), so a GPU run does not erase the CPU figures.
    out = Path(args.out)
    previous = out / "dcgan_throughput.json"
    runs = json.loads(previous.read_text()).get("runs", {}) if previous.exists() else {}
    runs[device.type] = result
    write_json(previous, {"runs": runs}, indent=2)
    write_text(out / "dcgan_throughput.md", "## DCGAN training throughput (`bench/dcgan_throughput.py`)\n\n"
               + "\n".join(markdown(run) for run in runs.values()))
    print(markdown(result))
    return result


def markdown(result: dict) -> str:
    gap, noise = result["loss_gap_reference_vs_ours"], result["loss_gap_seed_noise"]
    lines = [
        f"### {result['device']}: {result['device_name']}, {result['cpu_threads']} torch threads"
        f" ({result.get('load_note') or 'load average %.1f at start' % result['load_average']})",
        "",
        f"{result['images']} 64x64 images, {result['epochs']} epochs, batch {result['batch_size']}, thesis architecture; "
        "first epoch excluded from timing.",
        "",
        "| loop | images/s |",
        "|---|---|",
        f"| reference (pytorch/examples: ImageFolder DataLoader, fp32, `.item()` per step) | {result['reference_images_per_second']:.1f} |",
        f"| ours (uint8 on device, one sync per epoch{', compile' if result['compile'] else ''}) | {result['ours_images_per_second']:.1f} |",
        f"| **speed-up** | **{result['speedup']:.2f}x** |",
        "",
        "Loss curves (mean |difference| of per-epoch means, same seed and initial weights):",
        "",
        "| | Loss_D | Loss_G | D(x) |",
        "|---|---|---|---|",
        f"| reference vs ours | {gap['Loss_D']:.3f} | {gap['Loss_G']:.3f} | {gap['D_x']:.3f} |",
        f"| ours vs ours, other seed (noise) | {noise['Loss_D']:.3f} | {noise['Loss_G']:.3f} | {noise['D_x']:.3f} |",
        "",
        f"Curves match within noise (gap <= 2x noise): **{result['curves_match_within_noise']}**.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
