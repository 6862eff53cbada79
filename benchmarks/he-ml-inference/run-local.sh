#!/bin/sh
# The harness's step sequence against hegpu's submission, without the harness (no torch, no
# download): a working directory laid out as the harness's, the submission installed and built
# as the harness would (scripts/build_task.sh), the workload's network (784-128-64-10 ReLU)
# from tests/fixtures/onnx/mlp-relu.onnx (trained by PyTorch on the project's 8,000 training
# digits and exported as the submission exports the harness's model) instead of the harness's
# .pth, then for each instance size the harness's stages in its order (the model imported with
# ReLU as degree-8 polynomials), each timed, the folders it measures sized with `du -sb`, and
# the predictions scored against the labels.
#
# Usage: benchmarks/he-ml-inference/run-local.sh [SIZE ...]   (0 single, 1 small, 2 medium,
# 3 large; default: 0 1). HEGPU_HE_BENCH_DIR names the working directory, which is kept
# (default: a new one under /tmp, removed at the end); HEGPU_DEVICE picks the server's device
# (cpu, gpu; default auto).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
if [ -n "${HEGPU_HE_BENCH_DIR:-}" ]; then
    work=$HEGPU_HE_BENCH_DIR
else
    # A folder of its own (a gigabyte of keys and ciphertexts), removed when the run ends.
    work=$(mktemp -d /tmp/hegpu-he-bench.XXXXXX)
    trap 'rm -rf "$work"' EXIT
fi
sizes=${*:-0 1}
mkdir -p "$work/harness"
"$here/install.sh" "$work" >/dev/null
cd "$work"
scripts/get_openfhe.sh
scripts/build_task.sh ./submission
export HEGPU_HE_BENCH_ONNX="$repo/tests/fixtures/onnx/mlp-relu.onnx"
export HEGPU_HE_BENCH_DATA="$repo/data/mnist"
now() { date +%s.%N; }
failed=0
for size in $sizes; do
    case $size in
        0) inst=single count=1 ;;
        1) inst=small count=15 ;;
        2) inst=medium count=1000 ;;
        3) inst=large count=10000 ;;
        *) echo "run-local.sh: size $size: 0 to 3" >&2; exit 2 ;;
    esac
    rm -rf "io/$inst" "datasets/$inst"
    mkdir -p "io/$inst"
    python3 "$here/make_inputs.py" "$repo/data/mnist" "$count" "datasets/$inst/intermediate"
    echo "== instance $size ($inst, $count images)"
    for stage in client_key_generation server_preprocess_model client_preprocess_input \
        client_encode_encrypt_input server_encrypted_compute client_decrypt_decode client_postprocess; do
        start=$(now)
        if [ "$stage" = server_preprocess_model ]; then
            submission/build/$stage >/dev/null
        else
            submission/build/$stage "$size" >/dev/null
        fi
        awk -v s="$stage" -v a="$start" -v b="$(now)" 'BEGIN { printf "%-30s %8.3f s\n", s, b - a }'
    done
    for dir in public_keys ciphertexts_upload ciphertexts_download; do
        printf '%-30s %12s bytes\n' "$dir" "$(du -sb "io/$inst/$dir" | cut -f1)"
    done
    predictions=io/$inst/encrypted_model_predictions.txt
    labels=datasets/$inst/intermediate/test_labels.txt
    right=$(paste -d ' ' "$predictions" "$labels" | awk '$1 == $2' | wc -l)
    lines=$(wc -l < "$predictions")
    echo "accuracy: $right of $lines (labels: $(wc -l < "$labels"))"
    if [ "$lines" -ne "$count" ]; then
        echo "run-local.sh: $lines predictions for $count images" >&2
        failed=1
    fi
    if [ "$size" = 0 ] && [ "$right" -ne 1 ]; then
        echo "run-local.sh: the single image's label is wrong" >&2
        failed=1
    fi
done
exit $failed
