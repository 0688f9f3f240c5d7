#!/bin/sh
# Install Leoflow for this user (no sudo) with pipx or `uv tool`, then run `leoflow setup`.
#
#   ./install.sh                      from a source checkout (this folder)
#   LEOFLOW_SPEC=leoflow==0.1.0 sh install.sh    a release, a wheel path or a git URL
#
# Options (environment): LEOFLOW_INSTALLER=pipx|uv (default: pipx if present, else uv),
# LEOFLOW_PYTHON (the interpreter for Leoflow's own tool venv, 3.11+),
# LEOFLOW_SKIP_SETUP=1 (install only). Nothing is written outside your home folder.
set -eu

say() { printf '%s\n' "leoflow-install: $*"; }
die() { printf '%s\n' "leoflow-install: error: $*" >&2; exit 1; }

here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
spec=${LEOFLOW_SPEC:-}
if [ -z "$spec" ]; then
    if [ -f "$here/pyproject.toml" ] && grep -q '^name = "leoflow"' "$here/pyproject.toml"; then
        spec=$here
    else
        spec=leoflow
    fi
fi

# -- a Python 3.11+ -------------------------------------------------------------------------
python=${LEOFLOW_PYTHON:-}
if [ -z "$python" ]; then
    for candidate in python3.13 python3.12 python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            python=$(command -v "$candidate")
            break
        fi
    done
fi
[ -n "$python" ] || die "Leoflow needs Python 3.11 or newer: install it (e.g. pyenv install 3.11, apt install python3.11, brew install python@3.11) and run this again"
say "using $python ($("$python" -V 2>&1))"

# -- the installer ---------------------------------------------------------------------------
installer=${LEOFLOW_INSTALLER:-}
if [ -z "$installer" ]; then
    if command -v pipx >/dev/null 2>&1; then installer=pipx
    elif command -v uv >/dev/null 2>&1; then installer=uv
    else installer=uv-bootstrap
    fi
fi

case "$installer" in
pipx)
    say "installing $spec with pipx"
    pipx install --force --python "$python" "$spec"
    bin_dir=$(pipx environment --value PIPX_BIN_DIR 2>/dev/null || echo "$HOME/.local/bin")
    ;;
uv | uv-bootstrap)
    uv=uv
    if [ "$installer" = uv-bootstrap ]; then
        # No pipx, no uv: put uv in a user-level venv (pip comes with Python; no sudo).
        tools=${XDG_DATA_HOME:-$HOME/.local/share}/leoflow-installer
        say "neither pipx nor uv found: installing uv into $tools"
        "$python" -m venv "$tools" || die "python -m venv failed (Debian/Ubuntu: apt install python3-venv)"
        "$tools/bin/python" -m pip install --quiet --upgrade uv
        uv=$tools/bin/uv
    fi
    say "installing $spec with uv tool"
    # --with pip: `leoflow setup` downloads the UI bundle with pip, which uv venvs lack.
    "$uv" tool install --force --python "$python" --with pip "$spec"
    bin_dir=$("$uv" tool dir --bin 2>/dev/null || echo "$HOME/.local/bin")
    ;;
*) die "LEOFLOW_INSTALLER must be pipx or uv, not $installer" ;;
esac

leoflow=$bin_dir/leoflow
[ -x "$leoflow" ] || leoflow=$(command -v leoflow || true)
[ -n "$leoflow" ] && [ -x "$leoflow" ] || die "the leoflow command was not found in $bin_dir after installing"
say "installed $("$leoflow" --version) at $leoflow"
case ":$PATH:" in
*":$bin_dir:"*) ;;
*) say "add $bin_dir to your PATH (e.g. in ~/.profile): export PATH=\"$bin_dir:\$PATH\"" ;;
esac

# -- prepare the machine --------------------------------------------------------------------
if [ "${LEOFLOW_SKIP_SETUP:-0}" != 1 ]; then
    "$leoflow" setup
fi
say "done. Start Leoflow Lite with: leoflow lite   (UI at http://localhost:8088)"
