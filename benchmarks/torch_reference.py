"""PyTorch reference of the same ResNet-18 training step, for a side-by-side number.

The CIFAR ResNet-18 of the cluster-margin + MMD experiment (3x3 stem, no
max-pool, BasicBlocks [2, 2, 2, 2], 4x4 average pool, linear head), SGD
lr 0.1 / momentum 0.9 / weight decay 5e-4, batch 128, cross-entropy. Like jax_al's Trainer, the data sit on the device
as uint8 and each batch is gathered and augmented there: zero-pad 4 + random
32x32 crop on the uint8 images, random horizontal flip, then normalisation.
The last partial batch of an epoch is trained (drop_last=False, as that experiment's
DataLoader). Data are random images (throughput does not depend on them).

Timing: the first epoch(s) are warm-up (cuDNN autotuning, torch.compile);
each timed epoch is synchronised and the median reported, as in
`python -m jax_al.bench train`.

    python benchmarks/torch_reference.py                                # fp32, eager
    python benchmarks/torch_reference.py --dtype bfloat16 --channels-last --compile
    python benchmarks/torch_reference.py --device cpu --width 0.125 --labeled 512 --epochs 2

Needs torch (the GPU image has torch 2.11); exits with a message where it is
missing. Not a dependency of jax-al.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import statistics
import sys
import time

try:
  import torch
  import torch.nn as nn
  import torch.nn.functional as F
except ImportError:  # pragma: no cover - depends on the machine
  torch = None

MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2023, 0.1994, 0.2010)


def build_model(width: float = 1.0, num_classes: int = 10):
  w = [max(1, int(round(c * width))) for c in (64, 128, 256, 512)]

  class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
      super().__init__()
      self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
      self.bn1 = nn.BatchNorm2d(cout)
      self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
      self.bn2 = nn.BatchNorm2d(cout)
      self.shortcut = nn.Sequential()
      if stride != 1 or cin != cout:
        self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                      nn.BatchNorm2d(cout))

    def forward(self, x):
      out = F.relu(self.bn1(self.conv1(x)))
      out = self.bn2(self.conv2(out))
      return F.relu(out + self.shortcut(x))

  class ResNet18(nn.Module):
    def __init__(self):
      super().__init__()
      self.conv1 = nn.Conv2d(3, w[0], 3, 1, 1, bias=False)
      self.bn1 = nn.BatchNorm2d(w[0])
      layers, cin = [], w[0]
      for i, cout in enumerate(w):
        for j in range(2):
          layers.append(BasicBlock(cin, cout, 2 if (i > 0 and j == 0) else 1))
          cin = cout
      self.layers = nn.Sequential(*layers)
      self.linear = nn.Linear(cin, num_classes)

    def forward(self, x):
      out = F.relu(self.bn1(self.conv1(x)))
      out = self.layers(out)
      out = F.adaptive_avg_pool2d(out, 1).flatten(1)  # = avg_pool2d(4) at 32x32
      return self.linear(out)

  return ResNet18()


def augment(images_u8, idx, mean, std, pad: int = 4, memory_format=None):
  """uint8 NCHW [N, 3, 32, 32] -> augmented, normalised float batch of images[idx]."""
  x = images_u8[idx]
  b, c, h, w = x.shape
  x = F.pad(x, (pad, pad, pad, pad))  # zero padding on the uint8 image, as PIL does
  off = torch.randint(0, 2 * pad + 1, (b, 2), device=x.device)
  ar_h = torch.arange(h, device=x.device)
  ar_w = torch.arange(w, device=x.device)
  rows = (off[:, 0:1] + ar_h)[:, None, :, None]                 # [B, 1, H, 1]
  cols = (off[:, 1:2] + ar_w)[:, None, None, :]                 # [B, 1, 1, W]
  bi = torch.arange(b, device=x.device)[:, None, None, None]
  ci = torch.arange(c, device=x.device)[None, :, None, None]
  x = x[bi, ci, rows, cols]
  flip = torch.rand(b, device=x.device) < 0.5
  x = torch.where(flip[:, None, None, None], x.flip(3), x)
  x = (x.float() / 255.0 - mean) / std
  if memory_format is not None:
    x = x.contiguous(memory_format=memory_format)
  return x


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--device", default=None, help="cuda | cpu (default: cuda if available)")
  p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"),
                 help="bfloat16 = torch.autocast (parameters stay float32)")
  p.add_argument("--channels-last", action="store_true")
  p.add_argument("--compile", action="store_true", help="torch.compile the model")
  p.add_argument("--width", type=float, default=1.0, help="width multiplier (tiny on CPU)")
  p.add_argument("--batch", type=int, default=128)
  p.add_argument("--labeled", type=int, default=20000, help="images per epoch")
  p.add_argument("--warmup", type=int, default=1, help="untimed epochs first")
  p.add_argument("--epochs", type=int, default=3, help="timed epochs (median reported)")
  p.add_argument("--threads", type=int, default=None, help="CPU threads")
  p.add_argument("--json", default=None, help="write the result here")
  args = p.parse_args(argv)
  if torch is None:
    raise SystemExit("torch_reference: PyTorch is not installed in this Python "
                     f"({sys.executable}); run it where torch is (the GPU image has it), "
                     "e.g. python benchmarks/torch_reference.py --dtype bfloat16")
  device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
  if args.threads:
    torch.set_num_threads(args.threads)
  torch.manual_seed(0)
  cuda = device.type == "cuda"
  if cuda:
    torch.backends.cudnn.benchmark = True
  sync = torch.cuda.synchronize if cuda else (lambda: None)

  mf = torch.channels_last if args.channels_last else None
  model = build_model(args.width).to(device)
  if mf is not None:
    model = model.to(memory_format=mf)
  net = torch.compile(model) if args.compile else model
  opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
  mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1)
  std = torch.tensor(STD, device=device).view(1, 3, 1, 1)
  g = torch.Generator().manual_seed(0)
  images = torch.randint(0, 256, (args.labeled, 3, 32, 32), generator=g,
                         dtype=torch.uint8).to(device)
  labels = torch.randint(0, 10, (args.labeled,), generator=g).to(device)
  amp = args.dtype == "bfloat16"

  def step(idx):
    x = augment(images, idx, mean, std, memory_format=mf)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
      loss = F.cross_entropy(net(x), labels[idx])
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach()

  model.train()
  n_steps = math.ceil(args.labeled / args.batch)

  def epoch():
    perm = torch.randperm(args.labeled, device=device)
    loss = None
    for i in range(n_steps):
      loss = step(perm[i * args.batch:(i + 1) * args.batch])
    return loss

  t0 = time.perf_counter()
  for _ in range(args.warmup):
    epoch()
  sync()
  warm = time.perf_counter() - t0
  times = []
  for _ in range(args.epochs):
    t = time.perf_counter()
    loss = epoch()
    sync()
    times.append(time.perf_counter() - t)
  med = statistics.median(times)
  res = {
      "stack": "pytorch", "torch": torch.__version__, "device": str(device),
      "device_name": torch.cuda.get_device_name(device) if cuda else platform.processor(),
      "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
      "dtype": args.dtype, "channels_last": args.channels_last, "compile": args.compile,
      "width": args.width, "batch": args.batch, "labeled": args.labeled,
      "steps": n_steps, "warmup_s": warm, "epoch_s": med, "epoch_s_all": times,
      "images_per_s": args.labeled / med, "step_ms": 1e3 * med / n_steps,
      "final_loss": float(loss),
      "peak_device_bytes": int(torch.cuda.max_memory_allocated(device)) if cuda else None,
  }
  print(f"torch {res['torch']} {res['device_name'] or device} {args.dtype}"
        f"{' channels_last' if args.channels_last else ''}{' compile' if args.compile else ''}"
        f" width {args.width} batch {args.batch}: {res['images_per_s']:,.0f} images/s "
        f"(epoch of {args.labeled} in {med:.3f} s, median of {args.epochs}; warm-up "
        f"{warm:.1f} s)")
  if args.json:
    with open(args.json, "w") as f:
      json.dump(res, f, indent=1)
  return res


if __name__ == "__main__":
  main()
