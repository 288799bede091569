#!/usr/bin/env bash
# Builds the libFuzzer harnesses (tests/fuzz/) with clang, ASan and UBSan in a
# tree of their own, then runs them.
#   tools/fuzz.sh [--smoke] [--seconds N] [--build-dir DIR] [HARNESS...]
# Without --smoke: a campaign of N seconds per harness (default 300), whose
# corpus grows in DIR/corpus/<harness>/ from run to run; prints executions and
# coverage per harness at the end.
# --smoke: each harness for a few seconds from the committed seeds only
# (nothing is kept); fails on any crash, leak or property violation. CI runs it
# as the ctest test fuzz.smoke.
# HARNESS: names such as docker_stream (default: every tests/fuzz/fuzz_*.c).
# Crash inputs land in DIR/artifacts/; reproduce one with DIR/fuzz_<harness> FILE.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

smoke=0
seconds=
build=${PROCTOR_FUZZ_BUILD:-build-fuzz}
harnesses=()
while (($#)); do
    case $1 in
    --smoke) smoke=1 ;;
    --seconds) seconds=$2; shift ;;
    --build-dir) build=$2; shift ;;
    -h | --help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) harnesses+=("$1") ;;
    esac
    shift
done
if ((${#harnesses[@]} == 0)); then
    for f in tests/fuzz/fuzz_*.c; do
        n=${f##*/fuzz_}
        harnesses+=("${n%.c}")
    done
fi
# Smoke: 10 harnesses x 6 s (plus the build) stays well under 3 minutes on 2 cores.
seconds=${seconds:-$((smoke ? 6 : 300))}

if ! command -v clang >/dev/null || ! clang -print-file-name=libclang_rt.fuzzer-x86_64.a |
    grep -q /; then
    echo "fuzz.sh: clang with libFuzzer is missing: run tools/setup.sh" \
         "(Debian: clang libclang-rt-14-dev)" >&2
    exit 1
fi

CC=clang cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF \
    -DPROCTOR_FUZZ=ON -DPROCTOR_SANITIZE=address,undefined >/dev/null
targets=()
for h in "${harnesses[@]}"; do
    targets+=("fuzz_$h")
done
cmake --build "$build" --target "${targets[@]}" -j"$(nproc)" >/dev/null
build=$(cd "$build" && pwd)

# Reports are fatal and complete; leaks count as findings.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

mkdir -p "$build/artifacts" "$build/logs"
failed=()
summary=()
for h in "${harnesses[@]}"; do
    bin=$build/fuzz_$h
    seeds=$ROOT/tests/fuzz/corpus/$h
    if [ ! -x "$bin" ] || [ ! -d "$seeds" ]; then
        echo "fuzz.sh: no harness $h (tests/fuzz/fuzz_$h.c and tests/fuzz/corpus/$h/)" >&2
        exit 2
    fi
    if ((smoke)); then
        work=$(mktemp -d "$build/smoke-$h.XXXXXX")
    else
        work=$build/corpus/$h
        mkdir -p "$work"
    fi
    log=$build/logs/$h.log
    # New inputs go to the first directory only: the committed seeds stay as they are.
    rc=0
    "$bin" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$build/artifacts/$h-" "$work" "$seeds" >"$log" 2>&1 || rc=$?
    ((smoke)) && rm -rf "$work"
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    cov=$(grep -oE ' cov: [0-9]+' "$log" | tail -n 1 | grep -oE '[0-9]+' || true)
    ft=$(grep -oE ' ft: [0-9]+' "$log" | tail -n 1 | grep -oE '[0-9]+' || true)
    corp=$(grep -oE ' corp: [0-9]+' "$log" | tail -n 1 | grep -oE '[0-9]+' || true)
    line=$(printf '%-16s %10s execs  cov %5s  features %6s  corpus %5s  %s' "$h" "${execs:-?}" \
        "${cov:-?}" "${ft:-?}" "${corp:-?}" "$([ $rc = 0 ] && echo ok || echo "FAILED (rc $rc)")")
    summary+=("$line")
    echo "fuzz: $line" >&2
    if [ $rc != 0 ]; then
        failed+=("$h")
        # The finding: the sanitizer's or the property's report, and the input.
        grep -m 1 -B 2 -A 25 -E 'ERROR: |property violated|runtime error' "$log" >&2 || tail -n 40 "$log" >&2
        unit=$(sed -n 's/.*Test unit written to //p' "$log" | tail -n 1)
        if [ -n "$unit" ] && [ -f "$unit" ]; then
            echo "fuzz: input $unit ($(stat -c %s "$unit") bytes), hex (first 512):" >&2
            od -An -v -tx1 -N 512 "$unit" | tr -d ' \n' >&2
            echo >&2
        fi
    fi
done

echo
echo "fuzz: $( ((smoke)) && echo smoke || echo campaign), $seconds s per harness, logs in $build/logs"
printf '%s\n' "${summary[@]}"
if ((${#failed[@]})); then
    echo "fuzz: FAILED: ${failed[*]} (reproduce: $build/fuzz_<harness> $build/artifacts/<file>)" >&2
    exit 1
fi
