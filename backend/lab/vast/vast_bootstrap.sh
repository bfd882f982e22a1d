#!/bin/bash
# Lab stand-in for VAST's vast_bootstrap.sh (usage: vast_bootstrap.sh --interface <ip> --skip-prompt).
# It hands over to the lab's player, which validates the arguments as the real tool would and plays
# this guest's scenario on the lab clock (backend/lab/vast/player.py in vast-loopback).
set -euo pipefail
python="${LAB_PYTHON:-/usr/libexec/platform-python}"
player="${LAB_VAST_PLAYER:-/opt/lab/vast/player.py}"
cd "$(dirname "$0")"
exec "$python" "$player" bootstrap "$@"
