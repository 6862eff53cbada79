#!/bin/sh
# The harness runs `scripts/build_task.sh ./submission` from its working directory before every
# run: builds hegpu in release from the sources install.sh recorded (nothing is fetched but the
# crates cargo already has, or can reach) and puts the harness's stage programs in
# submission/build/.
set -eu
task=${1:?usage: scripts/build_task.sh TASK_DIR}
src=${HEGPU_SOURCE:-$(cat "$task/hegpu-source" 2>/dev/null || true)}
if [ -z "$src" ] || [ ! -f "$src/Cargo.toml" ]; then
    echo "build_task.sh: no hegpu sources: run benchmarks/he-ml-inference/install.sh HARNESS_DIR, or set HEGPU_SOURCE" >&2
    exit 1
fi
# HEGPU_BUILD_PROFILE=dev reuses a test build (the local run in CI); measured runs use release.
profile=${HEGPU_BUILD_PROFILE:-release}
cargo build --profile "$profile" --locked --bin hegpu --manifest-path "$src/Cargo.toml" --target-dir "$src/target"
mkdir -p "$task/build"
case $profile in dev) out=debug ;; *) out=$profile ;; esac
cp "$src/target/$out/hegpu" "$task/build/hegpu"
for stage in client_key_generation client_preprocess_input client_encode_encrypt_input \
    server_encrypted_compute client_decrypt_decode client_postprocess; do
    cp "$task/stage" "$task/build/$stage"
done
cp "$task/server_preprocess_model" "$task/export_onnx.py" "$task/build/"
chmod +x "$task/build/"*
