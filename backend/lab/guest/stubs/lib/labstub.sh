# shellcheck shell=bash disable=SC2034
# Shared by the lab's stub tools (sourced, not run): the lab's state, the VM's hardware, and
# helpers to read and write the guest's fake /proc/sys and /sys files.

LAB_STATE=/var/lib/lab
LAB_RUN=/run/lab
LAB_LIB=/usr/.lab/stubs/lib
LAB_PROG=${0##*/}

if [ -r "$LAB_RUN/hw.env" ]; then
    # shellcheck source=/dev/null
    . "$LAB_RUN/hw.env"
fi
: "${LAB_USER:=root}"
: "${LAB_SPEED:=1}"
: "${LAB_KERNEL:=4.18.0-553.56.1.el8_10.x86_64}"

lab_err() {
    printf '%s\n' "$*" >&2
}

lab_die() {
    local status=$1
    shift
    lab_err "$@"
    exit "$status"
}

lab_is_root() {
    [ "$LAB_USER" = "root" ]
}

# Sleep for a number of the lab's seconds (the lab compresses time by its speed).
lab_sleep() {
    local speed
    speed=$(cat "$LAB_RUN/speed" 2>/dev/null || printf '%s' "$LAB_SPEED")
    sleep "$(awk -v s="$1" -v k="$speed" 'BEGIN { if (k <= 0) k = 1; printf "%.3f", s / k }')"
}

# The path of a sysctl key (vm.swappiness or vm/swappiness) under /proc/sys.
lab_sysctl_path() {
    local key=$1
    key=${key//./\/}
    printf '/proc/sys/%s' "$key"
}

# The selected word of a multiple-choice sysfs file ("always madvise [never]" -> never).
lab_selected() {
    local text
    text=$(cat "$1" 2>/dev/null) || return 1
    if [[ $text =~ \[([^]]*)\] ]]; then
        printf '%s\n' "${BASH_REMATCH[1]}"
    else
        printf '%s\n' "${text%% *}"
    fi
}

# Write a choice into a multiple-choice sysfs file, in the kernel's format; fails on a bad value.
lab_choose() {
    local file=$1 value=$2 line="" choice found=""
    shift 2
    for choice in "$@"; do
        if [ "$choice" = "$value" ]; then
            line+="[$choice] "
            found=1
        else
            line+="$choice "
        fi
    done
    [ -n "$found" ] || return 1
    printf '%s\n' "${line% }" > "$file"
}

lab_thp_enabled_choices=(always madvise never)
lab_thp_defrag_choices=(always defer defer+madvise madvise never)
lab_scheduler_choices=(mq-deadline kyber bfq none)
