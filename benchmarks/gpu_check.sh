#!/usr/bin/env bash
# One-command GPU check (issue 18, item 5): the cuda-marked tests (tests/test_cuda.py) and one markdown table of
# train-step time and peak memory (BYOL (mmpretrain) vs MultiSiam, DenseSiam, Odin; ResNet-50, batch 64, bf16,
# 224 px: benchmarks/step_time.py), batched k-means vs fast-pytorch-kmeans on the same device
# (benchmarks/kmeans_bench.py), view-pair decoding per CPU data worker (benchmarks/loader_bench.py) and the GPU
# decode option: worker cost and DevicePairPreprocessor pairs/s on the device (benchmarks/device_decode_bench.py).
# Meant for one GPU, at most 8 minutes.
#
#   bash benchmarks/gpu_check.sh               # on a machine with a CUDA GPU
#   bash benchmarks/gpu_check.sh --cpu --tiny  # everything on the CPU at tiny sizes (CI: tests/test_gpu_check.py)
#
# --cpu: run on the CPU (the cuda tests are then skipped, and reported as skipped); --tiny: ResNet-18, batch 2,
# 64 px, one step per model, small k-means and decode runs. PYTHON overrides the interpreter (default: .venv/bin/python
# if present, else python). Exit status: 0 when every stage ran and no test failed, 1 otherwise, 2 on bad arguments.
set -uo pipefail

usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; }
CPU=0
TINY=0
for arg in "$@"; do
    case "$arg" in
        --cpu) CPU=1 ;;
        --tiny) TINY=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "gpu_check.sh: unknown argument '$arg' (use --cpu, --tiny or --help)" >&2; exit 2 ;;
    esac
done

cd "$(dirname "$0")/.." || exit 1
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python; fi
fi
if [ "$CPU" = 1 ]; then
    DEVICE=cpu
elif "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    DEVICE=cuda
else
    echo "gpu_check.sh: torch sees no CUDA device; run it on a GPU machine, or pass --cpu for the CPU smoke run" >&2
    exit 2
fi
if [ "$TINY" = 1 ]; then
    STEP_ARGS=(--depth 18 --batch 2 --size 64 --span-size 128 --steps 1 --warmup 0)
    KMEANS_ARGS=(--batch 8 --dim 16 --repeats 1)
    LOADER_ARGS=(--quick)
    DEVICE_DECODE_ARGS=(--quick)
else
    STEP_ARGS=(--depth 50 --batch 64 --size 224 --span-size 448 --steps 10 --warmup 3)
    KMEANS_ARGS=(--batch 256 --repeats 30)
    LOADER_ARGS=(--frames 8 --repeats 5)
    DEVICE_DECODE_ARGS=(--frames 16 --repeats 10 --batch 64)
fi

LOGS=$(mktemp -d)
trap 'rm -rf "$LOGS"' EXIT
STATUS=0
SECONDS=0

stage() {  # stage NAME LOG CMD...: run CMD (10 min cap), its output in LOG, progress on stderr
    local name=$1 log=$2
    shift 2
    echo "gpu_check: $name ... (${SECONDS}s so far)" >&2
    if ! timeout 600 "$@" >"$log" 2>&1; then
        echo "gpu_check: $name FAILED; its last lines:" >&2
        tail -n 15 "$log" >&2
        STATUS=1
        touch "$log.failed"
        return 1
    fi
}

# Rows "| SECTION | first cell | header: cell; ... |" from the markdown table in a benchmark's output; a failed run
# gives one FAILED row with its last line (the error).
table_rows() {
    if [ -f "$2.failed" ]; then
        echo "| $1 | FAILED | $(grep -v '^\s*$' "$2" | tail -n 1 | tr '|' '/') |"
        return
    fi
    awk -v sec="$1" '
        /^\|/ {
            n = split($0, c, / *\| */)
            if (!seen) { for (i = 2; i < n; i++) h[i] = c[i]; seen = 1; next }
            if (c[2] ~ /^-+:?$/) next
            row = ""
            for (i = 3; i < n; i++) if (c[i] != "") row = row (row == "" ? "" : "; ") h[i] ": " c[i]
            printf "| %s | %s | %s |\n", sec, c[2], row
        }' "$2"
}

stage "cuda tests" "$LOGS/tests" "$PYTHON" -m pytest tests/test_cuda.py -m cuda -q -rs -p no:cacheprovider
TESTS_RC=$?
stage "step time" "$LOGS/step" "$PYTHON" benchmarks/step_time.py --device "$DEVICE" --amp bf16 "${STEP_ARGS[@]}"
stage "k-means" "$LOGS/kmeans" "$PYTHON" benchmarks/kmeans_bench.py --device "$DEVICE" "${KMEANS_ARGS[@]}"
stage "decode" "$LOGS/decode" "$PYTHON" benchmarks/loader_bench.py "${LOADER_ARGS[@]}"
stage "device decode" "$LOGS/device_decode" "$PYTHON" benchmarks/device_decode_bench.py --device "$DEVICE" \
    "${DEVICE_DECODE_ARGS[@]}"

# The pytest summary line, e.g. "4 passed, 1 skipped in 9.1s": skipped tests stay "skipped" in the table.
SUMMARY=$(grep -E '^[0-9]+ (passed|failed|skipped|error)|^=+ .*(passed|failed|skipped|error)' "$LOGS/tests" | tail -n 1 |
          sed 's/=//g; s/^ *//; s/ *$//')
if [ "$TESTS_RC" = 0 ] && grep -q 'skipped' <<<"$SUMMARY" && ! grep -q 'passed' <<<"$SUMMARY"; then
    REASON=$(grep -m1 -o "SKIPPED.*" "$LOGS/tests" | sed 's/^SKIPPED \[[0-9]*\] [^:]*:[0-9]*: //')
    SUMMARY="$SUMMARY: not run ($REASON)"
fi

echo
echo "gpu_check on $DEVICE$([ "$TINY" = 1 ] && echo ' (--tiny sizes)'), $(date -u '+%Y-%m-%d %H:%M UTC'), ${SECONDS}s"
[ "$DEVICE" = cuda ] && echo "GPU: $("$PYTHON" -c 'import torch; print(torch.cuda.get_device_name(0))')"
for log in step kmeans decode device_decode; do  # each benchmark's own context line (model, batch, size, machine)
    [ -s "$LOGS/$log" ] && [ ! -f "$LOGS/$log.failed" ] && grep -m1 -v -e '^\s*$' -e '^|' -e '^gpu_check' "$LOGS/$log" | sed 's/^/- /'
done
echo
echo "| check | item | result |"
echo "|---|---|---|"
echo "| cuda tests | tests/test_cuda.py -m cuda | ${SUMMARY:-no pytest summary (see the error above)} |"
table_rows "step time ($DEVICE, bf16)" "$LOGS/step"
table_rows "k-means ($DEVICE)" "$LOGS/kmeans"
table_rows "decode (CPU worker)" "$LOGS/decode"
table_rows "device decode ($DEVICE)" "$LOGS/device_decode"
exit $STATUS
