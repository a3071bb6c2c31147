#!/usr/bin/env bash
# Installs the SDK test dependencies of loadtest/e2e (idempotent, fast when
# nothing changed):
#   js/node_modules  via `npm ci` from the committed package-lock.json
#   py/.venv         via `python3 -m venv` + `pip install -r requirements.txt`
# Stamps in .deps/ remember what was installed; delete .deps/ to force.
# Env: PYTHON (default python3) picks the interpreter for the venv.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
stamps="$here/.deps"
mkdir -p "$stamps"

hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

# ---- JavaScript ----
js="$here/js"
command -v node >/dev/null || { echo "deps.sh: node (20+) is not on PATH" >&2; exit 1; }
command -v npm >/dev/null || { echo "deps.sh: npm is not on PATH" >&2; exit 1; }
js_want="$(hash_of "$js/package.json" "$js/package-lock.json") node-$(node --version)"
if [[ -d "$js/node_modules/e2b" && -d "$js/node_modules/@e2b/code-interpreter" && -d "$js/node_modules/ws" \
      && "$(cat "$stamps/js" 2>/dev/null)" == "$js_want" ]]; then
  echo "deps.sh: js/node_modules up to date"
else
  echo "deps.sh: npm ci in $js"
  (cd "$js" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$js_want" > "$stamps/js"
fi

# ---- Python ----
py="$here/py"
python="${PYTHON:-python3}"
venv_py="$py/.venv/bin/python"
if [[ ! -x "$venv_py" ]] || ! "$venv_py" -c 'import sys' >/dev/null 2>&1; then
  echo "deps.sh: creating $py/.venv with $python"
  rm -rf "$py/.venv"
  "$python" -m venv "$py/.venv"
  rm -f "$stamps/py"
fi
py_want="$(hash_of "$py/requirements.txt") $("$venv_py" -c 'import sys; print(sys.version.split()[0])')"
if [[ "$(cat "$stamps/py" 2>/dev/null)" == "$py_want" ]]; then
  echo "deps.sh: py/.venv up to date"
else
  echo "deps.sh: pip install -r $py/requirements.txt"
  "$venv_py" -m pip install --disable-pip-version-check --quiet -r "$py/requirements.txt"
  "$venv_py" -c 'import e2b, e2b_code_interpreter, pytest'
  echo "$py_want" > "$stamps/py"
fi
