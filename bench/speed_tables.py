#!/usr/bin/python3
"""Markdown tables of bench/speed.sh from its raw.csv (one row per measurement).

  speed_tables.py [--env ENV.txt] [--load-end "L1 L5 L15"] RAW.csv
  speed_tables.py --best TABLE MODEL RAW.csv   (the fastest PyTorch setting for MN, as T:OB)
"""
import argparse
import csv
import statistics
import sys
from collections import defaultdict

ARCH = {"mlp": "784-300-300-300-10", "cnn": "1-10-mp-20-mp-40-mp-80-mp-flatten-10"}
# targets of the speed acceptance: PyTorch/kronvi per family at least, kronvi MN/DIAG at most
TARGET = {"mlp": ({"point": 2.5, "diag": 2.5, "mn": 3.8}, 1.2),
          "cnn": ({"point": 2.0, "diag": 3.0, "mn": 4.0}, None)}
TRAIN_TARGET = {"mlp": 3.0, "cnn": 3.0}
BURN_TARGET = 1.2
ORDER = ("point", "diag", "mn", "mn-diag")


def load(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def med(rows, key="s_step"):
    v = [float(r[key]) for r in rows if r[key] not in ("", "-")]
    return statistics.median(v) if v else float("nan")


def peak_mb(rows):
    v = [int(r["maxrss_kb"]) for r in rows if r["maxrss_kb"] not in ("", "-")]
    return max(v) / 1024.0 if v else float("nan")


def group(rows, *keys):
    g = defaultdict(list)
    for r in rows:
        g[tuple(r[k] for k in keys)].append(r)
    return g


def setting(conf):  # "omp2-ob1" -> "2 / 1"
    t, o = conf.replace("omp", "").split("-ob")
    return f"{t} / {o}"


def best_conf(rows, fam):
    by = group([r for r in rows if r["side"] == "pytorch" and r["family"] == fam], "config")
    if not by:
        return None, []
    c = min(by, key=lambda k: med(by[k]))
    return c[0], by[c]


def load_range(rows):
    v = [float(r["load1"]) for r in rows if r["load1"] not in ("", "-")]
    return f"{min(v):.2f}–{max(v):.2f}" if v else "?"


def f1(x, nd=1):
    return "–" if x != x else f"{x:.{nd}f}"


BLAS_NOTE = "OPENBLAS_CORETYPE unset for both sides"


def context(rows, core, extra):
    reps = max(int(r["rep"]) for r in rows)
    return (f"kronvi: BLAS core {core}; {extra}; {BLAS_NOTE}; "
            f"load average (1 min) during the table {load_range(rows)}; medians of {reps} "
            f"repetition(s), both sides interleaved")


def epoch_table(label, model, rows, core):
    fams = [f for f in ORDER if any(r["family"] == f for r in rows)]
    k = group([r for r in rows if r["side"] == "kronvi"], "family")
    steps = "s/step × 600"
    print(f"### ({label}) {model.upper()} {ARCH[model]}: seconds per epoch ({steps})\n")
    print(context(rows, core, "kronvi `bench_epoch --threads 2`; PyTorch at its fastest setting "
                  "per family (torch.set_num_threads = OMP_NUM_THREADS / OPENBLAS_NUM_THREADS)"))
    print()
    print("| family | kronvi s/epoch | PyTorch s/epoch | PyTorch threads / BLAS threads | "
          "PyTorch / kronvi | kronvi X / DIAG | kronvi peak MB | PyTorch peak MB |")
    print("|---|---|---|---|---|---|---|---|")
    kd = med(k.get(("diag",), []))
    res = {}
    for f in fams:
        kt = med(k.get((f,), []))
        conf, tr = best_conf(rows, f)
        tt = med(tr) if tr else float("nan")
        ratio = tt / kt if kt == kt else float("nan")
        xd = kt / kd if kd == kd else float("nan")
        res[f] = (ratio, xd, peak_mb(k.get((f,), [])) / peak_mb(tr) if tr else float("nan"))
        print(f"| {f} | {f1(kt * 600)} | {f1(tt * 600)} | {setting(conf) if conf else '–'} | "
              f"{f1(ratio, 2)}× | {f1(xd, 2)} | {f1(peak_mb(k.get((f,), [])), 0)} | "
              f"{f1(peak_mb(tr), 0)} |")
    ts, tx = TARGET[model]
    verdicts = [f"{f} {f1(res[f][0], 2)}× (≥ {ts[f]:g}: {'pass' if res[f][0] >= ts[f] else 'FAIL'})"
                for f in fams if f in ts]
    if verdicts:
        print("\nPyTorch / kronvi: " + "; ".join(verdicts))
    mem = [f"{f} {f1(res[f][2], 2)}" for f in fams]
    if mem:
        ok = all(res[f][2] <= 0.5 for f in fams)
        print("kronvi peak memory / PyTorch's: " + ", ".join(mem) +
              f" (≤ 0.5: {'pass' if ok else 'FAIL'})")
    if "mn" in res and tx is not None:
        x = res["mn"][1]
        print(f"kronvi MN / DIAG {f1(x, 2)} (≤ {tx:g}: {'pass' if x <= tx else 'FAIL'})")
    confs = sorted({r["config"] for r in rows if r["side"] == "pytorch"})
    if len(confs) > 1:
        print(f"\nPyTorch, every setting tried (s/epoch; threads / BLAS threads):\n")
        print("| family | " + " | ".join(setting(c) for c in confs) + " |")
        print("|---|" + "---|" * len(confs))
        t = group([r for r in rows if r["side"] == "pytorch"], "family", "config")
        for f in fams:
            print(f"| {f} | " + " | ".join(f1(med(t.get((f, c), [])) * 600) for c in confs) + " |")
    print()


def train_table(rows, core, epochs):
    print(f"### (c) Whole process: MN, ARD prior, {epochs} epochs, Fashion-MNIST (wall seconds)\n")
    print(context(rows, core, "`kronvi train --family mn --prior ard --seed 1` with its defaults "
                  "(`--threads 2`); PyTorch `bench/torch_train.py` at the MN setting of table a / b"))
    print("Both include start-up, data loading and the test evaluation after every epoch (PyTorch:"
          " mean-weight and pruned accuracy; kronvi: its default evaluation).\n")
    print("| model | kronvi s | PyTorch s | PyTorch threads / BLAS threads | PyTorch / kronvi | "
          "kronvi peak MB | PyTorch peak MB | kronvi test acc / pruned | PyTorch test acc / "
          "pruned |")
    print("|---|---|---|---|---|---|---|---|---|")
    for model in ("mlp", "cnn"):
        k = [r for r in rows if r["model"] == model and r["side"] == "kronvi"]
        t = [r for r in rows if r["model"] == model and r["side"] == "pytorch"]
        if not k and not t:
            continue
        kw, tw = med(k, "wall_s"), med(t, "wall_s")
        acc = lambda rs: (f"{float(rs[-1]['acc']):.4f} / {float(rs[-1]['pruned_acc']):.4f}"
                          if rs and rs[-1]["acc"] not in ("", "-") else "–")
        v = "pass" if tw / kw >= TRAIN_TARGET[model] else "FAIL"
        print(f"| {model.upper()} | {f1(kw)} | {f1(tw)} | "
              f"{setting(t[0]['config']) if t else '–'} | {f1(tw / kw, 2)}× (≥ "
              f"{TRAIN_TARGET[model]:g}: {v}) | "
              f"{f1(peak_mb(k), 0)} | {f1(peak_mb(t), 0)} | {acc(k)} | {acc(t)} |")
    print()


def burn_table(rows, core):
    print("### (d) Contention: a busy loop pinned to one core (`taskset -c 0`), MN epoch "
          "(s/step × 600)\n")
    print(context(rows, core, "kronvi `bench_epoch` at `--threads 2` and `--threads 1`; PyTorch "
                  "at torch threads 2 and 1 with OPENBLAS_NUM_THREADS=1, all beside the same "
                  "burner"))
    print()
    print("| model | kronvi t2 s/epoch | kronvi t1 s/epoch | kronvi t2 / t1 | PyTorch 2 / 1 "
          "s/epoch | PyTorch 1 / 1 s/epoch | best PyTorch / kronvi t2 | kronvi peak MB | "
          "PyTorch peak MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for model in ("mlp", "cnn"):
        m = [r for r in rows if r["model"] == model]
        if not m:
            continue
        c = group(m, "config")
        k2, k1 = med(c.get(("t2",), [])), med(c.get(("t1",), []))
        p2, p1 = med(c.get(("omp2-ob1",), [])), med(c.get(("omp1-ob1",), []))
        bp = min(x for x in (p2, p1, float("inf")) if x == x)
        r21 = k2 / k1
        verdict = "pass" if r21 <= BURN_TARGET else "FAIL"
        print(f"| {model.upper()} | {f1(k2 * 600)} | {f1(k1 * 600)} | {f1(r21, 2)} (≤ "
              f"{BURN_TARGET:g}: {verdict}) | {f1(p2 * 600)} | {f1(p1 * 600)} | "
              f"{f1(bp / k2, 2)}× | {f1(peak_mb([r for r in m if r['side'] == 'kronvi']), 0)} | "
              f"{f1(peak_mb([r for r in m if r['side'] == 'pytorch']), 0)} |")
    print()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("raw")
    ap.add_argument("--env")
    ap.add_argument("--load-end")
    ap.add_argument("--best", nargs=2, metavar=("TABLE", "MODEL"))
    a = ap.parse_args()
    rows = load(a.raw)
    if a.best:
        sel = [r for r in rows if r["table"] == a.best[0] and r["model"] == a.best[1]]
        conf, _ = best_conf(sel, "mn")
        if not conf:
            sys.exit(1)
        t, o = conf.replace("omp", "").split("-ob")
        print(f"{t}:{o}")
        return
    env = {}
    if a.env:
        for line in open(a.env).read().splitlines():
            k, _, v = line.partition(": ")
            env[k] = v.strip()
    core = env.get("kronvi BLAS core", "?")
    global BLAS_NOTE  # speed.sh's env line when both sides ran with kronvi's BLAS kernel pick
    for k in env:
        if k.startswith("both sides run with OPENBLAS_CORETYPE="):
            BLAS_NOTE = k.replace("both sides run with ", "both sides with ")
    epochs = next((t.split("=")[1] for t in env.get("settings", "").split()
                   if t.startswith("EPOCHS=")), "?")
    print("## kronvi vs PyTorch speed (bench/speed.sh)\n")
    for k in ("date", "uptime", "cpu",
              "point MLP step pinned to each CPU, one thread, at the start",
              "point MLP step pinned to each CPU, one thread, at the end",
              "kronvi", "kronvi BLAS core", "torch", "settings"):
        if k in env:
            print(f"- {k}: {env[k]}")
    if a.load_end:
        print(f"- load average at the end: {a.load_end}")
    print()
    by = group(rows, "table")
    if ("a",) in by:
        epoch_table("a", "mlp", by[("a",)], core)
    if ("b",) in by:
        epoch_table("b", "cnn", by[("b",)], core)
    if ("c",) in by:
        train_table(by[("c",)], core, epochs)
    if ("d",) in by:
        burn_table(by[("d",)], core)


if __name__ == "__main__":
    main()
