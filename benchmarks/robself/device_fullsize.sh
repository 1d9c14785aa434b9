#!/usr/bin/env bash
# RobSelf side by side with the authors' code at full size (RobSelf's protocol: whole
# Middlebury images, x4, the guide under `geosr eval --misalign default`'s homography,
# 1000 steps), several fits sharing one GPU.
#
#   benchmarks/robself/device_fullsize.sh prepare OFFICIAL_CHECKOUT
#       here: copies the authors' checkout and the depth pairs into .device/ (ignored by
#       git) with the one wheel the device machine lacks (affine), so that the run
#       needs nothing from outside the repository
#   benchmarks/robself/device_fullsize.sh run
#       on the GPU machine, from the repository root (carry .device): JOBS processes
#       share the (pair, RUN) fits, each taking every JOBS-th; fits still going at
#       DEADLINE seconds are stopped, the finished ones kept; then every RUN alone for
#       TIMING_STEPS steps on the first pair (time per step without sharing the card).
#       To OUT: fullsize.json (the parts' union), timing.json, run.log
#
# Settings (environment): JOBS (10), PAIRS (first N pairs; 4), STEPS (1000), DEADLINE
# (seconds; 450), TIMING_STEPS (100; 0: none), DEVICE (cuda), DATA
# (.device/data/middlebury_dctnet), OUT ($OUT or /tmp/robself_fullsize), RUNS
# ("official-re official-de robself-re robself-de mmsr").
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"

case "${1:-}" in
prepare)
    official=${2:?usage: $0 prepare OFFICIAL_CHECKOUT}
    [ -f "$official/model/network.py" ] || { echo "$official: no model/network.py" >&2; exit 2; }
    data=${SHARED_DATA:-$root/../shared/data}
    [ -d "$data/middlebury_dctnet" ] || { echo "$data/middlebury_dctnet not found" >&2; exit 2; }
    rm -rf .device && mkdir -p .device/data .device/whl
    cp -r "$official" .device/robself
    rm -rf .device/robself/.git
    cp -r "$data/middlebury_dctnet" .device/data/
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux2014_x86_64 -d .device/whl "affine>=2.4"
    du -sh .device
    ;;
run)
    JOBS=${JOBS:-10} PAIRS=${PAIRS:-4} STEPS=${STEPS:-1000} DEADLINE=${DEADLINE:-450}
    TIMING_STEPS=${TIMING_STEPS:-100} DEVICE=${DEVICE:-cuda}
    DATA=${DATA:-.device/data/middlebury_dctnet}
    RUNS=${RUNS:-official-re official-de robself-re robself-de mmsr}
    out=${OUT:-/tmp/robself_fullsize}
    parts=$(mktemp -d)
    mkdir -p "$out"
    if compgen -G ".device/whl/*.whl" >/dev/null; then
        python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site \
            .device/whl/*.whl
        export PYTHONPATH=/tmp/site
    fi
    export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
    common=(benchmarks/robself/official.py --official .device/robself --data "$DATA"
            --size full --misalign eval --device "$DEVICE" --threads 1)
    for r in $RUNS; do common+=(--run "$r"); done
    for k in $(seq 1 "$JOBS"); do
        timeout "$DEADLINE" python3 "${common[@]}" --pairs "$PAIRS" --steps "$STEPS" \
            --part "$k/$JOBS" --json "$parts/part$k.json" >"$parts/part$k.log" 2>&1 &
    done
    wait || true
    cat "$parts"/part*.log >"$out/run.log"
    tail -n 3 "$parts"/part*.log
    jsons=$(ls "$parts"/part*.json 2>/dev/null || true)
    [ -n "$jsons" ] || { echo "no part finished a fit (see $out/run.log)" >&2; exit 1; }
    # shellcheck disable=SC2086
    python3 benchmarks/robself/official.py --merge $jsons --json "$out/fullsize.json"
    if [ "$TIMING_STEPS" -gt 0 ]; then
        python3 "${common[@]}" --pairs 1 --steps "$TIMING_STEPS" --json "$out/timing.json" \
            >>"$out/run.log" 2>&1
    fi
    ;;
*)
    echo "usage: $0 prepare OFFICIAL_CHECKOUT | run" >&2
    exit 2
    ;;
esac
