#!/usr/bin/env bash
# Makes .ls-venv, the Label Studio that tests/test_labelstudio.py starts as a
# real server, unless it is there. Its own venv: label-studio pins numpy < 2.3
# (through opencv), which jax-al's venv must not get.
# Never fails the caller: a failed install is in .ls-venv.log, and the server
# test skips naming that log.
set -u
cd "$(dirname "$0")/.."
VENV=.ls-venv
LOG=.ls-venv.log
PACKAGES=("label-studio==1.23.2" "label-studio-sdk==2.1.2")

[ -e "$VENV/.jax-al-complete" ] && exit 0
if [ -e "$VENV" ] && [ ! -e "$VENV/.jax-al-installing" ]; then
  echo "$VENV exists and was not made by $0; left as it is" | tee "$LOG"
  exit 0
fi
rm -rf "$VENV"  # a half install of this script's own, cut short
start=$(date +%s)
echo "installing ${PACKAGES[*]} into $VENV (log: $LOG)"
if {
  python3 -m venv "$VENV" && touch "$VENV/.jax-al-installing" &&
    "$VENV/bin/pip" install -q --disable-pip-version-check "${PACKAGES[@]}" &&
    "$VENV/bin/python" -c "import label_studio, label_studio_sdk" &&
    [ -x "$VENV/bin/label-studio" ]
} >"$LOG" 2>&1; then
  touch "$VENV/.jax-al-complete" && rm -f "$VENV/.jax-al-installing"
  echo "installed ${PACKAGES[*]} in $(($(date +%s) - start)) s" | tee -a "$LOG"
else
  echo "FAILED after $(($(date +%s) - start)) s: installing ${PACKAGES[*]} into $VENV" >>"$LOG"
  echo "Label Studio install failed, see $LOG (its server test will skip)"
fi
exit 0
