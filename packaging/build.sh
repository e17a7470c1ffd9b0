#!/usr/bin/env bash
# Build the one-folder desktop bundle dist/efsam-studio/ with PyInstaller, then print its build time,
# size, and whether any torch file slipped in (exit 1 if so).
#
#   packaging/build.sh [PYTHON]      PYTHON: the interpreter whose packages are bundled (default .venv/bin/python)
#
# Work files go to packaging/build/ (ignored by git). The interpreter needs the base install plus
# onnxruntime (`pip install -e '.[cpu]'`); pyinstaller is installed into it when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${1:-.venv/bin/python}"
DIST=dist
WORK=packaging/build

if ! "$PY" -c "import PyInstaller" 2>/dev/null; then
    echo "installing pyinstaller into $("$PY" -c 'import sys; print(sys.prefix)')"
    "$PY" -m pip install --quiet "pyinstaller>=6"
fi
"$PY" -c "import onnxruntime" 2>/dev/null || {
    echo "error: $PY has no onnxruntime; the bundle's inference needs it: $PY -m pip install onnxruntime" >&2
    exit 1
}

start=$(date +%s)
"$PY" -m PyInstaller --noconfirm --clean --log-level WARN \
    --distpath "$DIST" --workpath "$WORK" packaging/efsam-studio.spec
seconds=$(( $(date +%s) - start ))

bundle="$DIST/efsam-studio"
# Desktop integration files beside the program (packaging/README.md says where they go).
cp packaging/linux/efsam-studio.desktop resources/icons/efsam-studio.png resources/icons/efsam-studio.svg "$bundle/"
size=$(du -sh "$bundle" | cut -f1)
files=$(find "$bundle" -type f | wc -l)
echo "built $bundle in ${seconds} s: $size, $files files"
torch_files=$(find "$bundle" \( -iname 'torch*' -o -iname 'libtorch*' -o -iname 'libc10*' -o -name 'onnxscript*' \) | head -5)
if [ -n "$torch_files" ]; then
    echo "error: the bundle holds torch/onnxscript files:" >&2
    echo "$torch_files" >&2
    exit 1
fi
echo "no torch in the bundle"
