#!/usr/bin/python3
"""Runs a command and reports its wall time and peak resident memory (getrusage RUSAGE_CHILDREN
ru_maxrss: the largest of the command and its waited-for descendants), for bench/speed.sh.

  measure.py OUT -- COMMAND [ARGS...]

The command's stdout and stderr go to OUT; then one line on stdout:
  MEASURE rc=STATUS wall_s=SECONDS maxrss_kb=KB
"""
import resource
import subprocess
import sys
import time


def main():
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        sys.exit("usage: measure.py OUT -- COMMAND [ARGS...]")
    with open(sys.argv[1], "w") as out:
        t0 = time.perf_counter()
        rc = subprocess.call(sys.argv[3:], stdout=out, stderr=subprocess.STDOUT)
        wall = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(f"MEASURE rc={rc} wall_s={wall:.3f} maxrss_kb={rss}", flush=True)


if __name__ == "__main__":
    main()
