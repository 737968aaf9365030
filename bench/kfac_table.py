"""Table of bench/kfac_race.sh: per optimizer the best learning rate of its grid (fewest epochs
to the target test accuracy, then the highest final accuracy), its epochs and training seconds
to the target, and the test accuracy after a fixed budget of training seconds.
usage: python3 bench/kfac_table.py bench/results/kfac mlp|cnn [TARGET] [BUDGET_SECONDS]"""
import csv
import glob
import os
import sys

out, model = sys.argv[1], sys.argv[2]
target = float(sys.argv[3]) if len(sys.argv) > 3 else (0.88 if model == "mlp" else 0.90)
budget = float(sys.argv[4]) if len(sys.argv) > 4 else (60.0 if model == "mlp" else 300.0)
runs, diverged = {}, {}
for path in sorted(glob.glob(os.path.join(out, f"{model}-*.csv"))):
    parts = os.path.basename(path)[len(model) + 1:-4].split("-", 1)
    if len(parts) != 2 or parts[0] not in ("sgd", "adam", "kfac", "ekfac"):
        continue  # another experiment's log
    name, lr = parts
    rows = list(csv.DictReader(open(path)))
    if not rows:  # diverged in its first epoch
        diverged.setdefault(name, []).append(lr)
        continue
    t, curve = 0.0, []
    for r in rows:
        t += float(r["seconds"])
        curve.append((int(r["epoch"]), t, float(r["test_acc_mean"])))
    runs.setdefault(name, []).append((lr, curve))


def reach(curve):
    for e, t, a in curve:
        if a >= target:
            return e, t
    return None, None


def at_budget(curve):
    best = None
    for e, t, a in curve:
        if t <= budget:
            best = a
    return best


print(f"{model}: target {target:.0%} test accuracy, budget {budget:.0f} s of training")
print("| optimizer | grid (lr) | best lr | epochs to target | seconds to target | s/epoch "
      f"| accuracy after {budget:.0f} s | best accuracy (epoch) |")
print("|---|---|---|---|---|---|---|---|")
for name in ("sgd", "adam", "kfac", "ekfac"):
    if name not in runs:
        continue
    grid = ", ".join([lr for lr, _ in runs[name]] + [f"{lr} (diverged)" for lr in diverged.get(name, [])])

    def key(item):
        e, _ = reach(item[1])
        return (e if e is not None else 1e9, -item[1][-1][2])

    lr, curve = min(runs[name], key=key)
    e, t = reach(curve)
    spe = curve[-1][1] / curve[-1][0]
    b = at_budget(curve)
    top = max(curve, key=lambda c: c[2])
    print(f"| {name} | {grid} | {lr} | {e if e else 'not reached'} | "
          f"{f'{t:.0f}' if t else '-'} | {spe:.1f} | {f'{b:.4f}' if b else '-'} | "
          f"{top[2]:.4f} ({top[0]}) |")
