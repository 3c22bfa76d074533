"""Benchmark nitsjax against FlowJAX, zuko, nflows and the original NITS; print tables.

    python experiments/bench/run.py --quick            # minutes: synth6, MAF + MAF-RQS
    python experiments/bench/run.py                    # full: every flow and data set
    python experiments/bench/run.py --libs nitsjax,zuko --flows maf --data synth6
    python experiments/bench/run.py --nits-original /tmp/NITS   # add the original NITS

Every figure comes from its own fresh process (``worker.py``), so peak RSS and thread
pools are per library. Peers that are not installed show up as "not installed".
Ratios ``(xR)`` beside a peer's figure say how many times better nitsjax is on it
(throughput: ours / theirs; times: theirs / ours); R > 1 means nitsjax leads.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import FLOW_TITLES, FLOWS, machine_info, run_worker  # noqa: E402

LIBS = ("nitsjax", "nitsjax-fit", "flowjax", "flowjax-fit", "zuko", "nflows")
LIB_TITLES = {
    "nitsjax": "nitsjax (jitted step)",
    "nitsjax-fit": "nitsjax (train.fit, scan)",
    "flowjax": "FlowJAX (jitted step)",
    "flowjax-fit": "FlowJAX (fit_to_data)",
    "zuko": "zuko",
    "nflows": "nflows",
}
PACKAGES = {"nitsjax": "nitsjax", "flowjax": "flowjax", "zuko": "zuko", "nflows": "nflows"}

QUICK = dict(data=["synth6"], flows=["maf", "maf_rqs"], wall_steps=40, steady_steps=40,
             repeats=2, lp_n=4096, sample_n=1024, depths=[4, 16], depth_steps=5,
             nits_dims=[6], nits_hidden=[128], nits_batches=[256], nits_repeats=1,
             nits_train_hidden=[128], nits_train_batches=[256], nits_train_steps=5,
             nits_train_repeats=1, image_nits=((14, 14, 1), 16, 1, 8), cnf_data=["synth2"],
             cnf_steps=5)
FULL = dict(data=["synth6", "magic04", "synth21", "synth63"], flows=list(FLOWS),
            wall_steps=200, steady_steps=200, repeats=3, lp_n=16384, sample_n=4096,
            depths=[4, 8, 16], depth_steps=10, nits_dims=[6, 21], nits_hidden=[128, 1024],
            nits_batches=[64, 1024], nits_repeats=3, image_nits=((28, 28, 1), 32, 1, 16),
            nits_train_hidden=[128, 512, 1024],
            nits_train_batches=[256, 1024], nits_train_steps=20, nits_train_repeats=2,
            cnf_data=["synth2", "synth6"], cnf_steps=20)
# the `cnf` section: a continuous flow against the discrete flows, same data and batch
CNF_FLOWS = ("maf", "nsf", "cnf", "cnf_hutchinson")
# flows measured on the larger synthetic sets in the full mode (the others on synth6/magic04)
WIDE_FLOWS = ("maf", "maf_rqs")


def installed(lib: str) -> bool:
    return importlib.util.find_spec(PACKAGES[lib.split("-")[0]]) is not None


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small, fast configuration")
    p.add_argument("--libs", default=",".join(LIBS), help="comma list of " + ",".join(LIBS))
    p.add_argument("--flows", default=None, help="comma list of " + ",".join(FLOWS))
    p.add_argument("--data", default=None, help="comma list: synth6,magic04,synth21,synth63")
    p.add_argument("--sections", default="train,depth,matmul,nits,nits_train",
                   help="comma list of train,depth,matmul,nits,nits_train,cnf (cnf: "
                        "CNF training steps/s against MAF and NSF, not in the default)")
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--layers", type=int, default=5)
    p.add_argument("--hidden", default="128,128")
    p.add_argument("--bins", type=int, default=8)
    p.add_argument("--steps", type=int, default=None, help="steady-state steps per repeat")
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--nits-original", default=os.environ.get("NITS_ORIGINAL"),
                   help="path of a local copy of github.com/lihenryhfl/NITS (never vendored)")
    p.add_argument("--nits-dims", default=None, help="comma list of NITS dimensions")
    p.add_argument("--nits-hidden", default=None, help="comma list of NITS MADE widths")
    p.add_argument("--nits-batches", default=None, help="comma list of NITS sample batches")
    p.add_argument("--nits-train-hidden", default=None,
                   help="comma list of MADE widths for the NITS training table")
    p.add_argument("--nits-train-batches", default=None,
                   help="comma list of batch sizes for the NITS training table")
    p.add_argument("--nitsjax-before", default=None,
                   help="path of another nitsjax checkout to add to the NITS training table "
                        "(e.g. the main branch before a change), measured in the same run")
    p.add_argument("--nits-torch-threads", default="1",
                   help="comma list of torch thread counts for the original in the NITS "
                        "training table (each measured; the table quotes the fastest); "
                        "sampling uses the first")
    p.add_argument("--depths", default=None, help="comma list of depths for the depth table")
    p.add_argument("--python", default=sys.executable, help="interpreter for the workers")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per worker")
    p.add_argument("--out", default=None, help="also write all raw results as JSON here")
    p.add_argument("--from-json", default=None,
                   help="print the tables of a results file written by --out; measure nothing")
    return p.parse_args(argv)


def fmt(v, digits=3):
    if v is None:
        return "-"
    if isinstance(v, float):
        if v != v:
            return "-"
        if abs(v) >= 100:
            return f"{v:,.0f}"
        return f"{v:.{digits}g}"
    return str(v)


def ratio(ours, theirs, higher_better=True):
    if ours is None or theirs is None or not ours or not theirs:
        return ""
    r = ours / theirs if higher_better else theirs / ours
    return f" (x{r:.2f})"


# ------------------------------------------------------------------------ sections
def section_train(cfg, args, libs, log):
    rows = []
    hidden = [int(h) for h in args.hidden.split(",")]
    for data in cfg["data"]:
        flows = cfg["flows"]
        if not args.quick and data in ("synth21", "synth63") and args.flows is None:
            flows = [f for f in flows if f in WIDE_FLOWS]
        for flow in flows:
            group = {"data": data, "flow": flow, "results": {}}
            for lib in libs:
                if not installed(lib):
                    group["results"][lib] = {"error": "not installed"}
                    continue
                task = {
                    "kind": "train", "lib": lib, "flow": flow, "data": data,
                    "batch": args.batch, "layers": args.layers, "hidden": hidden,
                    "bins": args.bins, "wall_steps": cfg["wall_steps"],
                    "steady_steps": cfg["steady_steps"], "repeats": cfg["repeats"],
                }
                if not lib.endswith("-fit"):
                    task.update(lp_n=cfg["lp_n"], sample_n=cfg["sample_n"])
                log(f"train {data} {flow} {lib}")
                group["results"][lib] = run_worker(task, args.python, args.timeout)
            rows.append(group)
    return rows


def section_depth(cfg, args, libs, log):
    hidden = [int(h) for h in args.hidden.split(",")]
    out = {}
    for lib in [x for x in libs if x in ("nitsjax", "nitsjax-fit", "flowjax", "flowjax-fit")]:
        if not installed(lib):
            continue
        for depth in cfg["depths"]:
            task = {"kind": "train", "lib": lib, "flow": "maf", "data": "synth6",
                    "batch": args.batch, "layers": depth, "hidden": hidden, "bins": args.bins,
                    "wall_steps": cfg["depth_steps"], "steady_steps": cfg["depth_steps"],
                    "repeats": 1}
            log(f"depth {lib} {depth}")
            out.setdefault(lib, {})[depth] = run_worker(task, args.python, args.timeout)
    return out


def section_nits(cfg, args, log):
    out = []
    libs = ["nitsjax"] + (["nits-original"] if args.nits_original else [])
    for d in cfg["nits_dims"]:
        for h in cfg["nits_hidden"]:
            for n in cfg["nits_batches"]:
                row = {"dim": d, "hidden": h, "batch": n, "results": {}}
                for lib in libs:
                    task = {"kind": "nits", "lib": lib, "dim": d, "hidden": h, "blocks": 4,
                            "batch": n, "repeats": cfg["nits_repeats"], "data": f"synth{d}",
                            "nits_original": args.nits_original,
                            "torch_threads": int(args.nits_torch_threads.split(",")[0])}
                    log(f"nits d={d} hidden={h} batch={n} {lib}")
                    row["results"][lib] = run_worker(task, args.python, args.timeout)
                out.append(row)
    if cfg.get("image_nits"):
        # batched image sampling: image NITS (PixelCNN++ conditioner), pixel by pixel in
        # one compiled loop, untrained params
        shape, filters, resnets, n = cfg["image_nits"]
        row = {"shape": list(shape), "filters": filters, "resnets": resnets, "batch": n,
               "results": {}}
        task = {"kind": "image_nits", "shape": list(shape), "filters": filters,
                "resnets": resnets, "batch": n, "repeats": cfg["nits_repeats"]}
        log(f"image nits sampling shape={shape} filters={filters} batch={n}")
        row["results"]["nitsjax"] = run_worker(task, args.python, args.timeout)
        out.append(row)
    return out


def section_nits_train(cfg, args, log):
    """NITS training steps of nitsjax and the original, measured back to back per
    configuration (alternating which goes first), ``nits_train_repeats`` times each."""
    out = []
    runs = [("nitsjax", None)]
    if args.nitsjax_before:
        runs.append(("nitsjax-before", None))
    if args.nits_original:
        runs += [("nits-original", int(k)) for k in args.nits_torch_threads.split(",")]
    for h in cfg["nits_train_hidden"]:
        for n in cfg["nits_train_batches"]:
            row = {"dim": 6, "hidden": h, "batch": n, "results": {}, "original_by_threads": {}}
            for lib, threads in runs:
                task = {"kind": "nits_train", "lib": lib, "dim": 6, "hidden": h, "blocks": 4,
                        "batch": n, "warmup": 3, "steps": cfg["nits_train_steps"],
                        "repeats": cfg["nits_train_repeats"], "torch_threads": threads,
                        "nits_original": args.nits_original}
                if lib == "nitsjax-before":
                    task.update(lib="nitsjax", nitsjax_path=args.nitsjax_before)
                log(f"nits train hidden={h} batch={n} {lib} threads={threads}")
                res = run_worker(task, args.python, args.timeout)
                if lib.startswith("nitsjax"):
                    row["results"][lib] = res
                    continue
                row["original_by_threads"][threads] = res
                best = row["results"].get(lib)
                if best is None or res.get("steps_per_s", 0) > best.get("steps_per_s", 0):
                    row["results"][lib] = dict(res, torch_threads=threads)
            out.append(row)
    return out


def section_cnf(cfg, args, log):
    """Training steps/s of ``nj.flows.cnf`` (exact and Hutchinson trace; adaptive Tsit5,
    rtol = atol = 1e-5) next to MAF and coupling NSF on the same data and batch, each in
    its own worker, measured in the same run."""
    hidden = [int(h) for h in args.hidden.split(",")]
    out = []
    for data in cfg["cnf_data"]:
        group = {"data": data, "results": {}}
        for flow in CNF_FLOWS:
            task = {"kind": "train", "lib": "nitsjax", "flow": flow, "data": data,
                    "batch": args.batch, "layers": args.layers, "hidden": hidden,
                    "bins": args.bins, "wall_steps": 2, "steady_steps": cfg["cnf_steps"],
                    "repeats": cfg["repeats"], "lp_n": 1024, "sample_n": 256}
            log(f"cnf {data} {flow}")
            group["results"][flow] = run_worker(task, args.python, args.timeout)
        out.append(group)
    return out


def print_cnf(rows):
    p = print
    p("## Continuous normalizing flow against discrete flows (nitsjax, jitted step)\n")
    p("CNF: one ODE layer, MLP hidden as the others', Tsit5 with rtol = atol = 1e-5, "
      "checkpointed gradients; (x) = steps/s relative to MAF.\n")
    p("| data | flow | steps/s | compile, s | log_prob rows/s | sample rows/s |")
    p("|---|---|---|---|---|---|")
    for g in rows:
        maf = g["results"].get("maf", {})
        for flow, r in g["results"].items():
            if "error" in r:
                p(f"| {g['data']} | {FLOW_TITLES[flow]} | {r['error'][:80]} | | | |")
                continue
            rel = (f" (x{r['steps_per_s'] / maf['steps_per_s']:.3g})"
                   if maf.get("steps_per_s") and flow != "maf" else "")
            p(f"| {g['data']} | {FLOW_TITLES[flow]} | {fmt(r.get('steps_per_s'))}{rel} | "
              f"{fmt(r.get('compile_s'))} | {fmt(r.get('logprob_per_s'))} | "
              f"{fmt(r.get('sample_per_s'))} |")
    p("")


# ------------------------------------------------------------------------ printing
def print_tables(report, args, peak):
    p = print
    m = report["machine"]
    p(f"# nitsjax benchmarks ({report['mode']})\n")
    p(f"- date: {report['date']}; command: `{report['command']}`")
    p(f"- machine: {m['cpu']}, {m['cores']} cores, {m['memory']}, {m['os']}, "
      f"Python {m['python']}; load average at start {m['loadavg']}, at end "
      f"{report['loadavg_end']}")
    vers = {}
    for g in report.get("train", []) + report.get("nits_train", []):
        for r in g["results"].values():
            vers.update(r.get("versions", {}))
    if vers:
        p("- versions: " + ", ".join(f"{k} {v}" for k, v in sorted(vers.items())))
    p(f"- float32, batch {args.batch}, {args.layers} layers, hidden {args.hidden}, "
      f"{args.bins} spline bins on [-4, 4], Adam 1e-3; medians over repeats")
    best = None
    if peak:
        best = max(v for v in (peak.get("large"), peak.get("made")) if v)
        p(f"- XLA float32 matmul: {fmt(peak.get('large'))} GFLOP/s (2048^3), "
          f"{fmt(peak.get('made'))} GFLOP/s (512x128x128); % peak below is of the larger")
    p("- (xR): how many times better nitsjax is (R > 1: nitsjax leads); training rows are "
      "compared with nitsjax's train.fit path, log_prob/sampling with nitsjax's jitted "
      "functions\n")

    for g in report.get("train", []):
        res = g["results"]
        ref_t = res.get("nitsjax-fit") or {}
        if "steps_per_s" not in ref_t:
            ref_t = res.get("nitsjax") or {}
        ref = res.get("nitsjax") or {}
        dim = next((r["dim"] for r in res.values() if "dim" in r), "?")
        p(f"## {FLOW_TITLES[g['flow']]}, {g['data']} (d={dim})\n")
        p("| library | steps/s | wall to N steps, s | compile, s | log_prob rows/s "
          "| sample rows/s | peak RSS MiB | GFLOP/s (% peak) |")
        p("|---|---|---|---|---|---|---|---|")
        for lib, r in res.items():
            if "error" in r:
                p(f"| {LIB_TITLES[lib]} | {r['error'][:80]} | | | | | | |")
                continue
            me = lib in ("nitsjax", "nitsjax-fit")
            sps = fmt(r.get("steps_per_s")) + ("" if me else ratio(
                ref_t.get("steps_per_s"), r.get("steps_per_s")))
            wall = f"{fmt(r.get('wall_s'))} ({r.get('wall_steps')})" + ("" if me else ratio(
                ref_t.get("wall_s"), r.get("wall_s"), higher_better=False))
            comp = fmt(r.get("compile_s")) + ("" if me else ratio(
                ref_t.get("compile_s"), r.get("compile_s"), higher_better=False))
            lp = fmt(r.get("logprob_per_s")) + ("" if lib == "nitsjax" else ratio(
                ref.get("logprob_per_s"), r.get("logprob_per_s")))
            sm = fmt(r.get("sample_per_s")) + ("" if lib == "nitsjax" else ratio(
                ref.get("sample_per_s"), r.get("sample_per_s")))
            gf = r.get("gflops")
            if gf is None and r.get("steps_per_s") and ref.get("flops_per_step"):
                gf = ref["flops_per_step"] * r["steps_per_s"] / 1e9
            gfs = "-" if gf is None else f"{gf:.1f}" + (
                f" ({100 * gf / best:.0f}%)" if best else "")
            p(f"| {LIB_TITLES[lib]} | {sps} | {wall} | {comp} | {lp} | {sm} | "
              f"{fmt(r.get('peak_rss_mb'))} | {gfs} |")
        p("")

    depth = report.get("depth")
    if depth:
        depths = sorted({int(k) for v in depth.values() for k in v})
        p("## Compile time against depth (MAF affine, synth6; first training call, s)\n")
        p("| library | " + " | ".join(f"{d} layers" for d in depths) + " | last / first |")
        p("|---|" + "---|" * (len(depths) + 1))
        for lib, byd in depth.items():
            vals = [(byd.get(d) or byd.get(str(d)) or {}).get("compile_s") for d in depths]
            growth = (f"{vals[-1] / vals[0]:.2f}" if vals and vals[0] and vals[-1] else "-")
            p(f"| {LIB_TITLES[lib]} | " + " | ".join(fmt(v) for v in vals) + f" | {growth} |")
        p("")

    nits_rows = report.get("nits")
    if nits_rows:
        p("## NITS sampling (PNN [1,16,16,1], residual MADE with 4 blocks, unless noted)\n")
        p("| d | hidden | batch | library | samples/s | compile, s | solver | iterations "
          "mean / max | max CDF residual |")
        p("|---|---|---|---|---|---|---|---|---|")
        for row in [r for r in nits_rows if "shape" not in r]:
            ours = row["results"].get("nitsjax", {})
            for lib, r in row["results"].items():
                if "error" in r:
                    p(f"| {row['dim']} | {row['hidden']} | {row['batch']} | {lib} | "
                      f"{r['error'][:80]} | | | | |")
                    continue
                sps = fmt(r.get("samples_per_s")) + ("" if lib == "nitsjax" else ratio(
                    ours.get("samples_per_s"), r.get("samples_per_s")))
                its = f"{fmt(r.get('iters_mean'))} / {fmt(r.get('iters_max'))}"
                p(f"| {row['dim']} | {row['hidden']} | {row['batch']} | {lib} | {sps} | "
                  f"{fmt(r.get('compile_s'))} | {r.get('solver', '-')} | {its} | "
                  f"{fmt(r.get('residual_max'))} |")
        p("")
        print_image_sampling([r for r in nits_rows if "shape" in r])
    if report.get("nits_train"):
        print_nits_train(report["nits_train"], peak)
    if report.get("cnf"):
        print_cnf(report["cnf"])


def print_image_sampling(rows):
    """Image NITS sampling: images/s and pixels/s of ``flow.sample_batch`` (one compiled
    loop over the pixels), compile time."""
    if not rows:
        return
    p = print
    p("## Image NITS sampling (PixelCNN++ conditioner, PNN [1,16,16,1], untrained)\n")
    p("| shape | filters | resnets | batch | images/s | sub-pixels/s | compile, s |")
    p("|---|---|---|---|---|---|---|")
    for row in rows:
        r = row["results"]["nitsjax"]
        shape = "x".join(str(v) for v in row["shape"])
        head = f"| {shape} | {row['filters']} | {row['resnets']} | {row['batch']} |"
        if "error" in r:
            p(f"{head} {r['error'][:80]} | | |")
            continue
        p(f"{head} {fmt(r.get('images_per_s'))} | {fmt(r.get('subpixels_per_s'))} | "
          f"{fmt(r.get('compile_s'))} |")
    p("")


def print_nits_train(rows, peak):
    """The NITS training table: steps/s with the ratio nitsjax / original, the step split
    into conditioner and PNN (each timed alone, forward + backward), FLOP/s, compile time,
    peak memory of the steps."""
    p = print
    best = None
    if peak:
        best = max(v for v in (peak.get("large"), peak.get("made")) if v)
    p("## NITS training (d=6, PNN [1,16,16,1], residual MADE with 4 blocks, bounded)\n")
    p("| hidden | batch | original steps/s (threads) | nitsjax before steps/s "
      "| nitsjax steps/s | CPU ms/step orig / "
      "nitsjax | original cond / PNN ms | nitsjax cond / PNN ms | nitsjax step / cond "
      "| nitsjax GFLOP/s (% peak) | compile s | step memory MiB orig / nitsjax (XLA plan) |")
    p("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        o = row["results"].get("nits-original", {})
        j = row["results"].get("nitsjax", {})
        jb = row["results"].get("nitsjax-before", {})
        if "error" in j:
            p(f"| {row['hidden']} | {row['batch']} | | | {j['error'][:80]} | | | | | | | |")
            continue
        o_sps = (f"{fmt(o.get('steps_per_s'))} ({o.get('torch_threads', '-')})"
                 if "error" not in o else o["error"][:60])
        cpu = (f"{fmt(o.get('step_cpu_ms'))} / {fmt(j.get('step_cpu_ms'))}"
               + ratio(o.get("step_cpu_ms"), j.get("step_cpu_ms")))
        j_sps = fmt(j.get("steps_per_s")) + ratio(j.get("steps_per_s"), o.get("steps_per_s"))
        o_split = f"{fmt(o.get('cond_ms'))} / {fmt(o.get('pnn_ms'))}" if o else "-"
        j_split = f"{fmt(j.get('cond_ms'))} / {fmt(j.get('pnn_ms'))}"
        bound = (f"{j['step_ms'] / j['cond_ms']:.2f}" if j.get("cond_ms") else "-")
        gf = j.get("gflops")
        gfs = "-" if gf is None else f"{gf:.1f}" + (f" ({100 * gf / best:.0f}%)" if best else "")
        mem = (f"{fmt(o.get('rss_step_mb'))} / {fmt(j.get('rss_step_mb'))} "
               f"({fmt(j.get('xla_step_mb'))})")
        before = (fmt(jb.get("steps_per_s")) + ratio(jb.get("steps_per_s"), o.get("steps_per_s"))
                  if jb else "-")
        p(f"| {row['hidden']} | {row['batch']} | {o_sps} | {before} | {j_sps} | {cpu} "
          f"| {o_split} | {j_split} "
          f"| {bound} | {gfs} | {fmt(j.get('compile_s'))} | {mem} |")
    p("")


def main(argv=None):
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.from_json:
        with open(args.from_json) as f:
            report = json.load(f)
        peak = report.get("matmul")
        print_tables(report, args, None if not peak or "error" in peak else peak)
        return report
    cfg = dict(QUICK if args.quick else FULL)
    if args.flows:
        cfg["flows"] = args.flows.split(",")
    if args.data:
        cfg["data"] = args.data.split(",")
    if args.steps:
        cfg["wall_steps"] = cfg["steady_steps"] = cfg["cnf_steps"] = args.steps
    if args.repeats:
        cfg["repeats"] = cfg["nits_repeats"] = args.repeats
    for name in ("nits_dims", "nits_hidden", "nits_batches", "depths", "nits_train_hidden",
                 "nits_train_batches"):
        if getattr(args, name):
            cfg[name] = [int(v) for v in getattr(args, name).split(",")]
    libs = [x for x in args.libs.split(",") if x]
    for lib in libs:
        if lib not in LIBS:
            raise SystemExit(f"--libs: unknown {lib!r}; expected some of {', '.join(LIBS)}")
    sections = set(args.sections.split(","))
    t0 = time.time()

    def log(msg):
        print(f"[{time.time() - t0:7.1f}s] {msg}", file=sys.stderr, flush=True)

    report = {
        "mode": "quick" if args.quick else "full",
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "command": "python experiments/bench/run.py " + " ".join(sys.argv[1:]),
        "machine": machine_info(),
    }
    peak = None
    if "matmul" in sections:
        log("matmul peak")
        peak = run_worker({"kind": "matmul", "quick": args.quick}, args.python, args.timeout)
        report["matmul"] = peak
        if "error" in peak:
            peak = None
    if "train" in sections:
        report["train"] = section_train(cfg, args, libs, log)
    if "depth" in sections:
        report["depth"] = section_depth(cfg, args, libs, log)
    if "nits" in sections:
        report["nits"] = section_nits(cfg, args, log)
    if "nits_train" in sections:
        report["nits_train"] = section_nits_train(cfg, args, log)
    if "cnf" in sections:
        report["cnf"] = section_cnf(cfg, args, log)
    report["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
    report["elapsed_s"] = round(time.time() - t0, 1)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)
    print_tables(report, args, peak)
    log(f"done in {report['elapsed_s']} s")
    return report


if __name__ == "__main__":
    main()
