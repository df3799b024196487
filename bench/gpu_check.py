"""GPU check: are the fast paths correct, and how much faster are they? (CUDA, < 5 minutes)

1. Correctness of bf16 autocast, channels_last and torch.compile against fp32 for the
   article VAE (64x64) and DCGAN (64x64): relative error of outputs and losses, and the
   loss after a short identical training run.
2. Throughput (images/s) of a VAE step and a DCGAN step (one D + one G update) with the
   course helper's defaults (``runtime()``: bf16 + channels_last, data resident on the GPU
   via ``DeviceLoader``, ``loop.train``) against a naive fp32 loop over a
   ``torch.utils.data.DataLoader`` that copies every batch from the host.

Stand-alone: the models are defined here (same shapes as the course's), only
``course_lib.runtime`` and ``course_lib.loop`` are imported from the repository.

    python bench/gpu_check.py            # on a CUDA machine; writes bench/results/gpu_check.txt
    python bench/gpu_check.py --cpu-dry-run   # tiny sizes on CPU: checks the script itself

On a machine without CUDA it exits with a message (exit code 2).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from course_lib.loop import Budget, train  # noqa: E402
from course_lib.runtime import DeviceLoader, Runtime, autocast, runtime, seed_everything  # noqa: E402


# ------------------------------------------------------------------ models (as in the course)

class VAE(nn.Module):
    """Article VAE (section 4.2): convs 3-32-64-128 (4x4, s2), fc_mu/fc_logvar, mirrored decoder.
    The decoder returns logits; BCE-with-logits is autocast-safe (BCE on sigmoid is not)."""

    def __init__(self, *, image_size: int = 64, latent_dim: int = 128):
        super().__init__()
        s = image_size // 8
        self.s = s
        self.conv1, self.conv2, self.conv3 = nn.Conv2d(3, 32, 4, 2, 1), nn.Conv2d(32, 64, 4, 2, 1), nn.Conv2d(64, 128, 4, 2, 1)
        self.fc_mu, self.fc_logvar = nn.Linear(128 * s * s, latent_dim), nn.Linear(128 * s * s, latent_dim)
        self.fc_dec = nn.Linear(latent_dim, 128 * s * s)
        self.deconv1, self.deconv2 = nn.ConvTranspose2d(128, 64, 4, 2, 1), nn.ConvTranspose2d(64, 32, 4, 2, 1)
        self.deconv3 = nn.ConvTranspose2d(32, 3, 4, 2, 1)

    def forward(self, x, eps):
        h = F.relu(self.conv3(F.relu(self.conv2(F.relu(self.conv1(x))))))  # (B, 128, S/8, S/8)
        h = h.flatten(1)
        mu, logvar = self.fc_mu(h), self.fc_logvar(h)
        z = mu + torch.exp(0.5 * logvar) * eps                               # reparameterisation
        d = F.relu(self.fc_dec(z)).view(-1, 128, self.s, self.s)
        logits = self.deconv3(F.relu(self.deconv2(F.relu(self.deconv1(d)))))  # (B, 3, S, S)
        return logits, mu, logvar


def vae_loss(logits, x, mu, logvar):
    rec = F.binary_cross_entropy_with_logits(logits.float(), x, reduction="sum")
    kl = -0.5 * torch.sum(1 + logvar.float() - mu.float() ** 2 - logvar.float().exp())
    return (rec + kl) / x.shape[0]  # negative ELBO per image (Kingma & Welling 2014, eq. 10)


def dcgan(nz: int = 100, nf: int = 64):
    """DCGAN (Radford et al. 2016) generator and discriminator for 64x64 images."""
    g = nn.Sequential(
        nn.ConvTranspose2d(nz, nf * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(nf * 8), nn.ReLU(True),
        nn.ConvTranspose2d(nf * 8, nf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(nf * 4), nn.ReLU(True),
        nn.ConvTranspose2d(nf * 4, nf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(nf * 2), nn.ReLU(True),
        nn.ConvTranspose2d(nf * 2, nf, 4, 2, 1, bias=False), nn.BatchNorm2d(nf), nn.ReLU(True),
        nn.ConvTranspose2d(nf, 3, 4, 2, 1, bias=False), nn.Tanh())                 # (B, 3, 64, 64)
    d = nn.Sequential(
        nn.Conv2d(3, nf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True),
        nn.Conv2d(nf, nf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(nf * 2), nn.LeakyReLU(0.2, True),
        nn.Conv2d(nf * 2, nf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(nf * 4), nn.LeakyReLU(0.2, True),
        nn.Conv2d(nf * 4, nf * 8, 4, 2, 1, bias=False), nn.BatchNorm2d(nf * 8), nn.LeakyReLU(0.2, True),
        nn.Conv2d(nf * 8, 1, 4, 1, 0, bias=False), nn.Flatten())                    # (B, 1) logits
    return g, d


# ------------------------------------------------------------------ steps

def make_vae_step(model, rt: Runtime, *, lr=1e-3, latent_dim=128):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    scaler = rt.grad_scaler()

    def step(x):
        eps = torch.randn(x.shape[0], latent_dim, device=x.device)
        with autocast(rt):
            logits, mu, logvar = model(x, eps)
        loss = vae_loss(logits, x, mu, logvar)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        return {"loss": loss.detach()}
    return step


def make_gan_step(g, d, rt: Runtime, *, nz=100):
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    scaler = rt.grad_scaler()

    def step(x):
        real = x * 2 - 1  # [0, 1] -> [-1, 1] (tanh range)
        b = real.shape[0]
        z = torch.randn(b, nz, 1, 1, device=real.device)
        ones, zeros = torch.ones(b, 1, device=real.device), torch.zeros(b, 1, device=real.device)
        # update_d: maximise log D(x) + log(1 - D(G(z)))   (Goodfellow et al. 2014, eq. 1)
        with autocast(rt):
            fake = g(z)
            loss_d = F.binary_cross_entropy_with_logits(d(real).float(), ones) + \
                F.binary_cross_entropy_with_logits(d(fake.detach()).float(), zeros)
        opt_d.zero_grad(set_to_none=True)
        scaler.scale(loss_d).backward()
        scaler.step(opt_d)
        # update_g: non-saturating loss, maximise log D(G(z))
        with autocast(rt):
            loss_g = F.binary_cross_entropy_with_logits(d(fake).float(), ones)
        opt_g.zero_grad(set_to_none=True)
        scaler.scale(loss_g).backward()
        scaler.step(opt_g)
        scaler.update()
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach()}
    return step


# ------------------------------------------------------------------ checks

def rel_err(a, b) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm().clamp_min(1e-12))


def correctness(device, size, variants, steps, batch):
    """Per variant: forward rel. error vs fp32 and final loss of a short run vs fp32."""
    seed_everything(0)
    x = torch.rand(batch, 3, size, size, device=device)
    eps = torch.randn(batch, 128, device=device)
    z = torch.randn(batch, 100, 1, 1, device=device)
    data = (torch.rand(batch * 4, 3, size, size) * 255).to(torch.uint8)
    rows = []
    base = {}
    for name, rt in variants:
        seed_everything(0)
        vae = VAE(image_size=size)
        g, _ = dcgan()
        vae_run, g_run = rt.prepare(vae), rt.prepare(g)
        g.eval()
        xin = rt.batch(x)
        with torch.no_grad(), autocast(rt):
            out_vae = vae_run(xin, eps)[0].float()
            out_g = g_run(z).float()
        seed_everything(1)
        vae2 = VAE(image_size=size)
        step = make_vae_step(rt.prepare(vae2), rt)
        loader = DeviceLoader(data, batch_size=batch, device=device, seed=0, channels_last=rt.channels_last)
        hist = train(step, loader, budget=Budget(steps=steps), progress=False)
        final = statistics.fmean(hist["loss"][-5:])
        if name == "fp32":
            base = {"vae": out_vae, "g": out_g, "loss": final}
        rows.append((name, rel_err(out_vae, base["vae"]), rel_err(out_g, base["g"]),
                     final, abs(final - base["loss"]) / abs(base["loss"])))
    return rows


def throughput(device, size, batch, steps, rt_fast, rt_fp32, n_images):
    """images/s for VAE and DCGAN steps: helper defaults vs naive fp32 DataLoader loop."""
    data = (torch.rand(n_images, 3, size, size) * 255).to(torch.uint8)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    results = []
    for family in ("vae", "dcgan"):
        for mode in ("naive fp32 + DataLoader", "helper defaults"):
            seed_everything(0)
            rt = rt_fast if mode == "helper defaults" else rt_fp32
            if family == "vae":
                step = make_vae_step(rt.prepare(VAE(image_size=size)), rt)
            else:
                g, d = dcgan()
                step = make_gan_step(rt.prepare(g), rt.prepare(d), rt)
            if mode == "helper defaults":
                loader = DeviceLoader(data, batch_size=batch, device=device, seed=0, channels_last=rt.channels_last)
                run = lambda n: train(step, loader, budget=Budget(steps=n), progress=False)  # noqa: E731
            else:
                ds = torch.utils.data.TensorDataset(data)
                dl = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, drop_last=True, num_workers=0)

                def run(n, dl=dl, step=step):
                    done = 0
                    while done < n:
                        for (xb,) in dl:
                            float(step(xb.to(device).float().div(255))["loss" if family == "vae" else "loss_d"])
                            done += 1
                            if done == n:
                                break
            run(max(3, steps // 10))  # warm-up: cuDNN autotune, compile, allocator
            sync()
            t = time.perf_counter()
            run(steps)
            sync()
            results.append((family, mode, steps * batch / (time.perf_counter() - t)))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description="GPU correctness + throughput check")
    parser.add_argument("--cpu-dry-run", action="store_true", help="tiny sizes on CPU (tests the script)")
    parser.add_argument("--compile", action="store_true", help="also check torch.compile (adds ~1 min)")
    parser.add_argument("--steps", type=int, default=200, help="timed steps per throughput row")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "gpu_check.txt"))
    args = parser.parse_args()
    if not torch.cuda.is_available() and not args.cpu_dry_run:
        print("gpu_check: no CUDA device here, nothing to measure. Run it on a CUDA machine "
              "(e.g. Colab with a GPU runtime): python bench/gpu_check.py", file=sys.stderr)
        return 2
    if args.cpu_dry_run:
        device, size, batch, steps, n_images = torch.device("cpu"), 64, 4, 3, 32
        fast = runtime("cpu", amp="bf16", channels_last=True, compile=False)
        name = "CPU dry run (tiny sizes, numbers meaningless)"
    else:
        device, size, batch, steps, n_images = torch.device("cuda"), 64, args.batch, args.steps, 8192
        fast = runtime("cuda")  # the helper's defaults on this card
        name = torch.cuda.get_device_name(0)
    fp32 = runtime(device, amp="fp32", channels_last=False, compile=False)
    variants = [("fp32", fp32),
                ("channels_last", runtime(device, amp="fp32", channels_last=True, compile=False)),
                (fast.precision, runtime(device, amp=fast.precision, channels_last=False, compile=False)),
                (f"defaults ({fast.precision} + channels_last={fast.channels_last})", fast)]
    if args.compile:
        variants.append(("compile (fp32)", runtime(device, amp="fp32", channels_last=False, compile=True)))
    start = time.perf_counter()
    rows = correctness(device, size, variants, steps=max(3, min(50, steps)), batch=min(batch, 64))
    tput = throughput(device, size, batch, steps, fast, fp32, n_images)
    lines = [f"# bench/gpu_check.py on {name}, torch {torch.__version__}, {size}x{size}, batch {batch}",
             f"# helper defaults: {fast.describe()}", "",
             "| variant | VAE output rel. err | DCGAN G output rel. err | VAE loss after short run | rel. diff vs fp32 | verdict |",
             "|---|---|---|---|---|---|"]
    # bf16 keeps 8 mantissa bits: ~1e-2 relative error per output is expected, not a bug
    lines += [f"| {n} | {a:.2e} | {b:.2e} | {c:.2f} | {d:.2e} | {'ok' if max(a, b, d) < 5e-2 else 'CHECK'} |"
              for n, a, b, c, d in rows]
    lines += ["", "| model | loop | images/s | speed-up |", "|---|---|---|---|"]
    for family in ("vae", "dcgan"):
        naive = next(v for f, m, v in tput if f == family and m.startswith("naive"))
        for f, m, v in tput:
            if f == family:
                lines.append(f"| {f} | {m} | {v:.1f} | {v / naive:.2f}x |")
    lines.append(f"\n# total {time.perf_counter() - start:.0f} s")
    text = "\n".join(lines)
    print(text)
    if not args.cpu_dry_run:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
