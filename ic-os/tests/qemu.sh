# Shared by the boot tests (sourced): boots a disk image under QEMU (software emulation; no KVM
# here) with OVMF UEFI firmware, the serial console going to a log file.
#
#   boot_disk DISK LOG LIMIT [VARS] [EXTRA QEMU ARGS...]
#     DISK   the raw disk (written to: pass a copy, or add snapshot=on through EXTRA)
#     LOG    the serial console's log
#     LIMIT  seconds before QEMU is stopped
#     VARS   OVMF's variable store (persistent EFI variables); default: a fresh copy
# Returns QEMU's exit status (124 when the limit stopped it). QEMU stops on poweroff; a reboot
# restarts the firmware within the same QEMU run (systemd-boot counting, fallbacks).
set -euo pipefail
export PATH=/usr/sbin:/sbin:/usr/bin:/bin
ovmf_code=/usr/share/OVMF/OVMF_CODE_4M.fd
ovmf_vars=/usr/share/OVMF/OVMF_VARS_4M.fd
for need in qemu-system-x86_64 "$ovmf_code" "$ovmf_vars"; do
  command -v "$need" >/dev/null 2>&1 || [[ -f "$need" ]] ||
    { echo "FAIL: $need missing: apt-get install qemu-system-x86 ovmf (scripts/setup.sh does)"; exit 1; }
done

boot_disk() {
  local disk=$1 log=$2 limit=$3 vars=${4:-}
  shift 3
  (($#)) && shift
  if [[ -z "$vars" ]]; then
    vars=$(mktemp "${TEST_TMPDIR:-/tmp}/vars.XXXXXX")
    cp "$ovmf_vars" "$vars"
  fi
  local status=0
  # -nodefaults: no NIC, CD-ROM or VGA for the firmware to probe (about 1 s of each TCG boot).
  timeout "$limit" qemu-system-x86_64 -accel tcg -machine q35 -m 512 -smp 1 -nographic -nodefaults \
    -drive if=pflash,format=raw,unit=0,readonly=on,file="$ovmf_code" \
    -drive if=pflash,format=raw,unit=1,file="$vars" \
    -drive file="$disk",format=raw,if=virtio \
    -serial file:"$log" -monitor none -display none "$@" </dev/null >"$log.qemu" 2>&1 || status=$?
  return $status
}

# Prints the last lines of a console log and QEMU's own output.
show_console() {
  echo "--- serial console ($1):"
  cat -v "$1" | tail -n "${2:-60}"
  echo "--- qemu:"
  cat "$1.qemu"
}
