"""Benchmark: our DCGAN training loop against pytorch/examples ``dcgan/main.py``'s loop, same data, same run.

- **reference**: the training loop of pytorch/examples ``dcgan/main.py`` as published (commit
  77f55b9, 2025-08-25), reproduced statement for statement: ``cudnn.benchmark = True``; its
  Generator and Discriminator (with the Sigmoid) and its ``weights_init``; ``ImageFolder`` over
  image files with ``Resize(64)``, ``CenterCrop(64)``, ``ToTensor``, ``Normalize`` through a
  ``DataLoader(shuffle=True, num_workers=2)``; ``BCELoss``; the per-step print with its five
  ``.item()`` calls (into a buffer instead of the terminal); ``save_image`` of the real batch and of
  ``netG(fixed_noise)`` every 100 steps; ``torch.save`` of both state dicts every epoch. Only the
  command line is ours: ``--batchSize 128`` (the thesis's; main.py defaults to 64) and the data.
- **ours**: ``fashion_pipeline.gan.dcgan.train`` as the ``dcgan`` asset runs it (uint8 training set
  on the device, one sync per epoch, checkpoints; on CUDA bf16 autocast, fused Adam, channels_last,
  cudnn.benchmark, CUDA graphs). Reading the training set is timed separately (it is built once by
  the ``dcgan_training_set`` asset, not per run).

Data: synthetic runway looks written as ``--file-size`` px PNG files (crop-sized, not pre-shrunk to
64: the reference decodes and resizes them in every epoch, as it would the real crops), and the same
pictures decoded once to the 64x64 uint8 array ours trains on. Both loops use the same batch and
architecture. Timing: the first epoch of each loop is a warm-up (worker start-up, cuDNN autotuning,
graph capture) and is excluded; then whole epochs are timed until at least ``--steps`` steps
(default 200; on a CPU use fewer, e.g. ``--steps 12 --images 384 --batch-size 64``, and say so).

    python -m bench.dcgan_throughput --device cuda --json bench/results/dcgan_throughput_cuda.json

Never imports Dagster (``make gpu-check`` runs it on a bare GPU machine).
"""
from __future__ import annotations

import argparse
import datetime
import io
import math
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
from fashion_pipeline.gan.training_sets import load_images

RESULTS = Path(__file__).resolve().parent / "results"
THESIS = {"images": 5328, "epochs": 200, "target_seconds": 60}


# ---------------------------------------------------------------- data

def write_image_files(count: int, size: int, root: Path, seed: int = 0) -> Path:
    """``count`` synthetic runway looks as ``size`` x ``size`` PNGs in ImageFolder's layout (one class folder)."""
    from fashion_pipeline.synthetic import figures

    rng = np.random.default_rng(seed)
    folder = root / "images" / "all"
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        image, _ = figures.render_runway_look(rng, (size, size), outfit="full" if index % 2 else "separates")
        image.convert("RGB").save(folder / f"{index:06d}.png", compress_level=1)
    return root / "images"


# ---------------------------------------------------------------- reference: pytorch/examples dcgan/main.py

def reference_models(nz: int, ngf: int, ndf: int, nc: int = 3):
    """main.py's Generator and Discriminator (ngpu = 1) and weights_init, as published."""

    def weights_init(m):
        classname = m.__class__.__name__
        if classname.find('Conv') != -1:
            torch.nn.init.normal_(m.weight, 0.0, 0.02)
        elif classname.find('BatchNorm') != -1:
            torch.nn.init.normal_(m.weight, 1.0, 0.02)
            torch.nn.init.zeros_(m.bias)

    class Generator(nn.Module):
        def __init__(self):
            super().__init__()
            self.main = nn.Sequential(
                nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 8), nn.ReLU(True),
                nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True),
                nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
                nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
                nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh())

        def forward(self, input):
            return self.main(input)

    class Discriminator(nn.Module):
        def __init__(self):
            super().__init__()
            self.main = nn.Sequential(
                nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 4), nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 8), nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False), nn.Sigmoid())

        def forward(self, input):
            return self.main(input).view(-1, 1).squeeze(1)

    return Generator, Discriminator, weights_init


def reference_loop(folder: Path, outf: Path, args, device: torch.device) -> dict:
    """main.py from ``cudnn.benchmark = True`` to the end of its epoch loop; returns per-epoch seconds and steps."""
    import torch.backends.cudnn as cudnn
    import torch.optim as optim
    import torchvision.datasets as dset
    import torchvision.transforms as transforms
    import torchvision.utils as vutils

    torch.manual_seed(args.seed)
    cudnn.benchmark = True
    dataset = dset.ImageFolder(root=str(folder), transform=transforms.Compose([
        transforms.Resize(64), transforms.CenterCrop(64), transforms.ToTensor(),
        transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))]))
    dataloader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, shuffle=True, num_workers=args.workers)
    nz, niter = 100, args.epochs
    Generator, Discriminator, weights_init = reference_models(nz, args.ngf, args.ndf)
    netG = Generator().to(device)
    netG.apply(weights_init)
    netD = Discriminator().to(device)
    netD.apply(weights_init)
    criterion = nn.BCELoss()
    fixed_noise = torch.randn(args.batch_size, nz, 1, 1, device=device)
    real_label, fake_label = 1, 0
    optimizerD = optim.Adam(netD.parameters(), lr=0.0002, betas=(0.5, 0.999))
    optimizerG = optim.Adam(netG.parameters(), lr=0.0002, betas=(0.5, 0.999))
    printed = io.StringIO()  # main.py prints every step; the formatting and .item() syncs stay, the terminal does not
    seconds, steps, last = [], [], {}
    for epoch in range(niter):
        started = time.perf_counter()
        for i, data in enumerate(dataloader, 0):
            netD.zero_grad()
            real_cpu = data[0].to(device)
            batch_size = real_cpu.size(0)
            label = torch.full((batch_size,), real_label, dtype=real_cpu.dtype, device=device)
            output = netD(real_cpu)
            errD_real = criterion(output, label)
            errD_real.backward()
            D_x = output.mean().item()
            noise = torch.randn(batch_size, nz, 1, 1, device=device)
            fake = netG(noise)
            label.fill_(fake_label)
            output = netD(fake.detach())
            errD_fake = criterion(output, label)
            errD_fake.backward()
            D_G_z1 = output.mean().item()
            errD = errD_real + errD_fake
            optimizerD.step()
            netG.zero_grad()
            label.fill_(real_label)
            output = netD(fake)
            errG = criterion(output, label)
            errG.backward()
            D_G_z2 = output.mean().item()
            optimizerG.step()
            print('[%d/%d][%d/%d] Loss_D: %.4f Loss_G: %.4f D(x): %.4f D(G(z)): %.4f / %.4f'
                  % (epoch, niter, i, len(dataloader), errD.item(), errG.item(), D_x, D_G_z1, D_G_z2), file=printed)
            if i % 100 == 0:
                vutils.save_image(real_cpu, '%s/real_samples.png' % outf, normalize=True)
                fake = netG(fixed_noise)
                vutils.save_image(fake.detach(), '%s/fake_samples_epoch_%03d.png' % (outf, epoch), normalize=True)
        torch.save(netG.state_dict(), '%s/netG_epoch_%d.pth' % (outf, epoch))
        torch.save(netD.state_dict(), '%s/netD_epoch_%d.pth' % (outf, epoch))
        seconds.append(time.perf_counter() - started)
        steps.append(len(dataloader))
        last = {"Loss_D": errD.item(), "Loss_G": errG.item(), "D_x": D_x}
    return {"epoch_seconds": seconds, "epoch_steps": steps, "last_batch": last}


# ---------------------------------------------------------------- ours

def our_loop(images: np.ndarray, outf: Path, args, device: torch.device) -> dict:
    config = dcgan.TrainConfig(epochs=args.epochs, batch_size=args.batch_size, ngf=args.ngf, ndf=args.ndf,
                               seed=args.seed, device=str(device), compile=args.compile, cuda_graphs=not args.no_graphs,
                               checkpoint_every=args.checkpoint_every)
    marks = [time.perf_counter()]
    # on_epoch_end runs after the epoch's one host synchronisation, so each interval is complete GPU work.
    result = dcgan.train(images, outf, config, on_epoch_end=lambda epoch, stats: marks.append(time.perf_counter()),
                         log=lambda message: None)
    steps = math.ceil(len(images) / args.batch_size)
    return {"epoch_seconds": list(np.diff(marks)), "epoch_steps": [steps] * len(result.history),
            "last_batch": {k: result.history[-1]["tutorial_last_logged"][k] for k in ("Loss_D", "Loss_G", "D_x")},
            "total_seconds_with_outputs": result.seconds}


def timed(run: dict, count: int) -> dict:
    """Images and steps per second over the epochs after the first."""
    seconds, steps = sum(run["epoch_seconds"][1:]), sum(run["epoch_steps"][1:])
    epochs = len(run["epoch_seconds"]) - 1
    return {"timed_epochs": epochs, "timed_steps": steps, "seconds": seconds,
            "images_per_second": count * epochs / seconds, "steps_per_second": steps / seconds}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "cpu"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="cuda | cpu | auto")
    parser.add_argument("--images", type=int, default=None, help="training images (default: the thesis's 5,328; CPU 384)")
    parser.add_argument("--steps", type=int, default=None, help="at least this many timed steps per loop (default 200; CPU 12)")
    parser.add_argument("--file-size", type=int, default=192, help="side of the PNG files the reference reads")
    parser.add_argument("--batch-size", type=int, default=None, help="default 128 (the thesis's); CPU 64")
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--ndf", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2, help="reference DataLoader workers (main.py's default)")
    parser.add_argument("--seed", type=int, default=999)
    parser.add_argument("--compile", action="store_true", help="ours with torch.compile")
    parser.add_argument("--no-graphs", action="store_true", help="ours without CUDA graphs")
    parser.add_argument("--checkpoint-every", type=int, default=1)
    parser.add_argument("--json", default=None, help="result JSON (default bench/results/dcgan_throughput_<device>.json)")
    args = parser.parse_args(argv)
    device = pick_device(args.device)
    # A CPU step at the thesis's size takes seconds: the CPU defaults are a small run, stated in the output.
    small = device.type == "cpu"
    args.images = args.images or (384 if small else THESIS["images"])
    args.batch_size = args.batch_size or (64 if small else 128)
    args.steps = args.steps or (12 if small else 200)
    args.json = args.json or str(RESULTS / f"dcgan_throughput_{device.type}.json")
    steps_per_epoch = math.ceil(args.images / args.batch_size)
    args.epochs = 1 + math.ceil(args.steps / steps_per_epoch)  # + the warm-up epoch
    with tempfile.TemporaryDirectory() as workdir:
        work = Path(workdir)
        folder = write_image_files(args.images, args.file_size, work)
        started = time.perf_counter()
        images = load_images(sorted((folder / "all").glob("*.png")))
        decode_seconds = time.perf_counter() - started
        (work / "ref").mkdir()
        print(f"reference loop (pytorch/examples dcgan/main.py): {args.images} images, {args.epochs} epochs on {device}", flush=True)
        reference = reference_loop(folder, work / "ref", args, device)
        print("our loop (fashion_pipeline.gan.dcgan.train)", flush=True)
        ours = our_loop(images, work / "ours", args, device)
    ref, our = timed(reference, args.images), timed(ours, args.images)
    result = {
        "date": datetime.date.today().isoformat(), "device": str(device), "device_name": device_name(device),
        "torch": torch.__version__, "cpu_threads": torch.get_num_threads(), "images": args.images,
        "file_size": args.file_size, "batch_size": args.batch_size, "ngf": args.ngf, "ndf": args.ndf,
        "epochs": args.epochs, "compile": args.compile, "cuda_graphs": device.type == "cuda" and not args.no_graphs,
        "reference": {**reference, **ref}, "ours": {**ours, **our}, "speedup": our["images_per_second"] / ref["images_per_second"],
        "training_set_decode_seconds": decode_seconds,
        # The thesis's run: 200 epochs of 5,328 crops, at our measured rate (from this run's steady state).
        "projected_thesis_seconds": THESIS["epochs"] * THESIS["images"] / our["images_per_second"],
    }
    write_json(Path(args.json), result, indent=2)
    write_text(Path(args.json).with_suffix(".md"), markdown(result))
    print(markdown(result))
    return result


def markdown(result: dict) -> str:
    ref, our = result["reference"], result["ours"]
    return "\n".join([
        f"### {result['device']}: {result['device_name']} (torch {result['torch']}, {result['cpu_threads']} CPU threads, {result['date']})",
        "",
        f"{result['images']} images ({result['file_size']} px PNG files for the reference, the same decoded once to 64x64 "
        f"for ours, {result['training_set_decode_seconds']:.1f} s), batch {result['batch_size']}, ngf {result['ngf']} / "
        f"ndf {result['ndf']}; first epoch excluded; {ref['timed_steps']} reference and {our['timed_steps']} own steps timed.",
        "",
        "| loop | images/s | steps/s |",
        "|---|---|---|",
        f"| reference: pytorch/examples `dcgan/main.py` as published | {ref['images_per_second']:.1f} | {ref['steps_per_second']:.2f} |",
        f"| ours: `fashion_pipeline.gan.dcgan`{' (CUDA graphs)' if result['cuda_graphs'] else ''}"
        f"{' (compile)' if result['compile'] else ''} | {our['images_per_second']:.1f} | {our['steps_per_second']:.2f} |",
        f"| **ratio ours / reference** | **{result['speedup']:.2f}x** | |",
        "",
        f"At this rate the thesis's 200 epochs of 5,328 crops take {result['projected_thesis_seconds']:.0f} s "
        f"(target {THESIS['target_seconds']} s on one H100).",
        "",
    ])


if __name__ == "__main__":
    main()
