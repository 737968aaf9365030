# Shared by the long-run scripts (bench/vae_table3.sh, bench/paper_runs.sh): runs claimed by lock
# directories, so that several copies of a script can share a list, and a list run RUNS at a
# time. Sourced, not run.

# claim LOCKDIR: 0 when this process now holds the lock (a directory holding the claiming
# process's id; a lock whose process is gone is taken over).
claim() {
  local lock=$1
  if ! mkdir "$lock" 2>/dev/null; then
    kill -0 "$(cat "$lock/pid" 2>/dev/null)" 2>/dev/null && return 1 # a live process has it
    rm -rf "$lock"
    mkdir "$lock" 2>/dev/null || return 1
  fi
  echo "$BASHPID" >"$lock/pid"
}

# run_list FUNCTION RUNS REVERSE JOB...: FUNCTION with each job's words as its arguments, RUNS
# at a time, in order (REVERSE=1: from the end of the list).
run_list() {
  local fn=$1 runs=$2 reverse=$3 running=0 j
  shift 3
  local list=("$@")
  if [ "$reverse" = 1 ]; then
    local rev=() i
    for ((i = ${#list[@]} - 1; i >= 0; i--)); do rev+=("${list[$i]}"); done
    list=("${rev[@]}")
  fi
  for j in "${list[@]}"; do
    # shellcheck disable=SC2086
    "$fn" $j &
    running=$((running + 1))
    if [ "$running" -ge "$runs" ]; then
      wait -n
      running=$((running - 1))
    fi
  done
  wait
}
