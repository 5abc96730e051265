"""Paired gradients (live θ and a second point θ' on the same batch): one vmapped call vs two passes.

The auxiliary gradient of AGENT (snapshot), SVRG and MVR (previous iterate) is the gradient of the
same mini-batch at a second parameter set. ``sequential`` is what the correctors do now: the
training forward/backward on the live model, then a forward/backward on a second model copy that
holds θ'. ``fused`` is :func:`agent_lab.optim.fused.paired_gradients`: both in one
``torch.func.vmap`` call. Both run in train mode (BatchNorm with batch statistics). Times are
medians over ``--repeats`` rounds after ``--warmup`` rounds, synchronised on CUDA, all in one run;
each round times both paths back to back (alternating which goes first) and the ratio column is the
median of the per-round ratios fused / sequential.

    python benchmarks/bench_fused.py [--device cpu|cuda] [--batch 128] [--repeats 5] [--full]

``--full`` adds width 1 (the paper's networks) to width 0.25.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torch.nn.functional as F

from agent_lab.models import build_model
from agent_lab.optim.fused import paired_gradients


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def paired_timings(first, second, device: torch.device, warmup: int, repeats: int) -> tuple[float, float, float]:
    """Median seconds of ``first`` and ``second`` and the median of their per-round ratio.

    The two are timed in alternating order within each round, so a machine shared with other work
    slows both alike and the ratio stays meaningful even when the absolute times drift.
    """
    for _ in range(warmup):
        first()
        second()
    t_first, t_second, ratios = [], [], []
    for r in range(repeats):
        pair = {}
        for key, fn in (((0, first), (1, second)) if r % 2 == 0 else ((1, second), (0, first))):
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            pair[key] = time.perf_counter() - start
        t_first.append(pair[0])
        t_second.append(pair[1])
        ratios.append(pair[1] / pair[0])
    return statistics.median(t_first), statistics.median(t_second), statistics.median(ratios)


def peak_mib(fn, device: torch.device) -> float:
    if device.type != "cuda":
        return float("nan")
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    sync(device)
    return torch.cuda.max_memory_allocated(device) / 2**20


def one_case(name: str, width: float, batch: int, device: torch.device, warmup: int, repeats: int) -> dict:
    torch.manual_seed(0)
    model = build_model(name, 10, width=width).to(device).train()
    other = copy.deepcopy(model)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.01 * torch.randn_like(p))
    other_params = {n: p.detach() for n, p in other.named_parameters()}
    other_buffers = {n: b.detach() for n, b in other.named_buffers()}
    x = torch.rand(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    live_params = [p for p in model.parameters()]
    aux_params = [p for p in other.parameters()]

    def sequential():
        loss = F.cross_entropy(model(x), y)
        g_live = torch.autograd.grad(loss, live_params)
        g_other = torch.autograd.grad(F.cross_entropy(other(x), y), aux_params)
        return g_live, g_other

    def fused():
        return paired_gradients(model, other_params, other_buffers, x, y)

    # same numbers first (train-mode BN: both paths use batch statistics)
    g_live, g_other = sequential()
    _, f_live, f_other = fused()
    names = [n for n, _ in model.named_parameters()]
    # ‖fused − sequential‖ / ‖sequential‖ over all gradient entries, the worse of the two points (float32
    # rounding only: in float64 the two agree to ~1e-14; the tests check this)
    err = 0.0
    for fused_g, seq_g in ((f_live, g_live), (f_other, g_other)):
        diff = sum(float((fused_g[n] - a).double().square().sum()) for n, a in zip(names, seq_g))
        norm = sum(float(a.double().square().sum()) for a in seq_g)
        err = max(err, (diff / norm) ** 0.5)

    t_seq, t_fused, ratio = paired_timings(sequential, fused, device, warmup, repeats)
    return {"model": name, "width": width, "batch": batch, "seq_ms": 1e3 * t_seq, "fused_ms": 1e3 * t_fused,
            "ratio": ratio, "max_abs_diff": err,
            "seq_peak_mib": peak_mib(sequential, device), "fused_peak_mib": peak_mib(fused, device)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--full", action="store_true", help="also width 1")
    parser.add_argument("--models", default="vgg16,resnet18")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave as is)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    widths = [0.25] + ([1.0] if args.full else [])
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    tf32 = torch.backends.cudnn.allow_tf32 if device.type == "cuda" else False
    print(f"# paired gradients, train mode, float32, torch {torch.__version__}, {where}"
          + (f", cudnn tf32={tf32}" if device.type == "cuda" else ""))
    print(f"# medians of {args.repeats} rounds after {args.warmup} warm-up rounds; "
          f"ratio = median per-round fused / sequential")
    header = ("model", "width", "batch", "seq ms", "fused ms", "ratio", "‖Δg‖/‖g‖", "seq MiB", "fused MiB")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for width in widths:
        for name in args.models.split(","):
            r = one_case(name, width, args.batch, device, args.warmup, args.repeats)
            print(f"| {r['model']} | {r['width']:g} | {r['batch']} | {r['seq_ms']:.1f} | {r['fused_ms']:.1f} | "
                  f"{r['ratio']:.2f} | {r['max_abs_diff']:.1e} | {r['seq_peak_mib']:.0f} | "
                  f"{r['fused_peak_mib']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
