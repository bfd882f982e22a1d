#!/bin/bash
# Lab stand-in for VAST's vman.sh:
#   VMS_PASSWORD=<password> vman.sh <build> <pem> vcli -u <user> -c cluster create --build <build> --name <name> --loopback
#   vman.sh <build> <pem> start
# The password comes in the environment; `-p <password>` is refused (any guest user could read it in
# /proc/<pid>/cmdline). Why, and what is not known about the real tools: backend/lab/facts.py.
# It hands over to the lab's player, which validates the arguments as the real tool would and plays
# this guest's scenario on the lab clock (backend/lab/vast/player.py in vast-loopback).
set -euo pipefail
python="${LAB_PYTHON:-/usr/libexec/platform-python}"
player="${LAB_VAST_PLAYER:-/opt/lab/vast/player.py}"
exec "$python" "$player" vman "$@"
