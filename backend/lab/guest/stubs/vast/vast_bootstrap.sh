#!/bin/bash
# Placeholder for the VAST 5.4 bootstrap script of the OVA. The lab's VAST tools (this script and
# vman.sh, replaying the field run's install) come with the install issue; they live in
# backend/lab/guest/stubs/vast/ and are copied to /vast/bundles when a guest's disk is seeded.
printf 'vast_bootstrap.sh: the lab does not emulate the VAST bootstrap yet\n' >&2
exit 1
