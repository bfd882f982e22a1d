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

# -- packages (the lab's rpm database: name, evr, arch, repo, install time; tab-separated) ---------
LAB_RPMDB=$LAB_STATE/rpmdb

lab_installed() { # package
    [ -r "$LAB_RPMDB" ] && awk -F'\t' -v p="$1" '$1 == p { found = 1 } END { exit !found }' "$LAB_RPMDB"
}

# -- kernel modules (stubs/lib/kmods.tsv: module, path, what it needs) -----------------------------
# The row of a module the guest's kernel has, or nothing: the table lists the lab's Rocky kernel's
# modules; LAB_KERNEL_MISSING (hw.env) names the storage drivers the kernel on this disk lacks
# (backend/lab/guest/image.py: a guest recording's kernel).
lab_kmod_row() { # module
    local module=${1//-/_}
    case " ${LAB_KERNEL_MISSING:-} " in *" $module "*) return 0 ;; esac
    awk -F'\t' -v m="$module" '!/^#/ && $1 == m { print; exit }' "$LAB_LIB/kmods.tsv"
}

# -- units -----------------------------------------------------------------------------------------
# Print the catalog row of a unit whose package is installed: unit package comm exec wanted_by
# condition preset description (tab-separated); fail when the unit does not exist on the guest.
lab_unit_row() {
    local row package
    row=$(awk -F'\t' -v u="$1" '!/^#/ && $1 == u { print; exit }' "$LAB_LIB/units.tsv")
    [ -n "$row" ] || return 1
    package=$(printf '%s' "$row" | cut -f2)
    lab_installed "$package" || return 1
    printf '%s\n' "$row"
}

lab_unit_field() { # row index
    printf '%s' "$1" | cut -f"$2"
}

lab_unit_name() {
    case "$1" in
        *.service|*.socket|*.target|*.timer|*.mount|*.device|*.path|*.slice|*.scope) printf '%s' "$1" ;;
        *) printf '%s.service' "$1" ;;
    esac
}

# Whether a unit's daemon process runs (pid recorded at start, same command name).
lab_unit_running() { # unit comm
    local pid comm
    pid=$(cat "$LAB_RUN/units/$1.pid" 2>/dev/null) || return 1
    [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] || return 1
    comm=$(cat "/proc/$pid/comm" 2>/dev/null)
    [ "$comm" = "$2" ]
}

# The lab's "virtualization": the lab guest is a KVM VM.
lab_virt() {
    printf 'kvm\n'
}

# -- sysctl ----------------------------------------------------------------------------------------
# Whether a value suits a sysctl (integers, with ranges where the kernel enforces them).
lab_sysctl_valid() { # key value
    local key=${1//\//.} value=$2
    case "$key" in
        kernel.hostname|kernel.domainname|kernel.core_pattern|kernel.random.*|kernel.osrelease|kernel.ostype|kernel.version)
            return 0 ;;
    esac
    [[ $value =~ ^-?[0-9]+([[:space:]]+-?[0-9]+)*$ ]] || return 1
    case "$key" in
        vm.swappiness|vm.dirty_ratio|vm.dirty_background_ratio) [ "$value" -ge 0 ] && [ "$value" -le 100 ] ;;
        vm.overcommit_memory) [ "$value" -ge 0 ] && [ "$value" -le 2 ] ;;
        kernel.sched_autogroup_enabled|kernel.numa_balancing) [ "$value" -ge 0 ] && [ "$value" -le 1 ] ;;
        *) return 0 ;;
    esac
}

# Write a sysctl into the guest's /proc/sys; prints the kernel's complaint and fails on a bad
# key or value. net.* is accepted and not kept (the lab guest shares this machine's network).
lab_sysctl_write() { # key value
    local key=$1 value=$2 path
    path=$(lab_sysctl_path "$key")
    case "${key//\//.}" in
        net.*) return 0 ;;
    esac
    if [ ! -e "$path" ]; then
        lab_err "sysctl: cannot stat $path: No such file or directory"
        return 255
    fi
    if ! lab_sysctl_valid "$key" "$value"; then
        lab_err "sysctl: setting key \"${key//\//.}\": Invalid argument"
        return 255
    fi
    printf '%s\n' "$value" > "$path"
}

lab_sysctl_read() { # key
    local path
    path=$(lab_sysctl_path "$1")
    [ -f "$path" ] || return 1
    tr '\n' ' ' < "$path" | sed 's/ $//'
}

# The persisted sysctl files in the order systemd-sysctl and `sysctl --system` apply them.
lab_sysctl_files() {
    local dir name seen=" "
    local -a conf_files=()
    for dir in /etc/sysctl.d /run/sysctl.d /usr/local/lib/sysctl.d "$LAB_LIB/sysctl.d"; do
        for name in "$dir"/*.conf; do
            [ -e "$name" ] || continue
            conf_files+=("${name##*/}	$name")
        done
    done
    while IFS=$'\t' read -r base path; do
        case "$seen" in *" $base "*) continue ;; esac
        seen+="$base "
        printf '%s\n' "$path"
    done < <(printf '%s\n' "${conf_files[@]}" | sort -s -t$'\t' -k1,1)
    [ -f /etc/sysctl.conf ] && printf '/etc/sysctl.conf\n'
}

# The path a sysctl file is shown as (the vendor files of the lab are Rocky's /usr/lib/sysctl.d).
lab_sysctl_shown() {
    case "$1" in
        "$LAB_LIB"/sysctl.d/*) printf '/usr/lib/sysctl.d/%s' "${1##*/}" ;;
        *) printf '%s' "$1" ;;
    esac
}

# -- sysfs -----------------------------------------------------------------------------------------
LAB_THP=/sys/kernel/mm/transparent_hugepage
LAB_SCHEDULER=/sys/block/sda/queue/scheduler

# -- the disk's layout (backend/lab/guest/blockdev.py: the partition table and the root XFS) ------
LAB_DISK_ENV=$LAB_STATE/disk.env

# Load the layout (SDA{1,2,3}_{START,SECTORS}, ROOT_FS_BLOCKS, ROOT_LOG_BLOCKS, XFS_BLOCK_BYTES,
# ROOT_FSTYPE, BOOT_FSTYPE, BOOT_DF_KIB, ROOT_UUID, MBR_MAX_SECTORS; a disk seeded before fs types
# were kept has XFS) and DISK_SECTORS, the disk's size as the kernel sees it.
lab_disk_load() {
    # shellcheck source=/dev/null
    . "$LAB_DISK_ENV"
    : "${ROOT_FSTYPE:=xfs}" "${BOOT_FSTYPE:=xfs}" "${BOOT_DF_KIB:=1038336}" "${ROOT_LOG_BLOCKS:=$XFS_LOG_BLOCKS}"
    DISK_SECTORS=$(cat /sys/block/sda/size 2>/dev/null || printf '0')
}

# Rewrite one assignment of the layout (what a tool changed on the disk).
lab_disk_set() { # key value
    sed -i "s/^$1=.*/$1=$2/" "$LAB_DISK_ENV"
}

# What df shows as the root filesystem's size, in KiB: its blocks minus its internal log (XFS) or
# journal and inode tables (ext4), as backend.lab.facts.df_kib.
lab_root_df_kib() {
    local log=${ROOT_LOG_BLOCKS:-$XFS_LOG_BLOCKS} tables=0
    [ "${ROOT_FSTYPE:-xfs}" = ext4 ] && tables=$(( ROOT_FS_BLOCKS / ${EXT4_INODE_TABLE_FRACTION:-64} ))
    printf '%s' $(( (ROOT_FS_BLOCKS - tables - log) * XFS_BLOCK_BYTES / 1024 ))
}
