# Shared by the upgrade tests (sourced after qemu.sh, with $tmp, $log and fail() set): deliveries
# of signed updates on disks, and checks on the serial console and on the disk image QEMU left.
#
#   field RELEASE KEY             a field of the release's update-manifest.json
#   delivery PACKAGE SIGNED OUT [flip|truncate]
#                                 what a mirror serves, as a tar on a disk: SIGNED's manifest and
#                                 signature and PACKAGE (a release's update-img.tar.zst), optionally
#                                 with one byte flipped or cut to two thirds
#   in_order STEP...              each string is on the console, after the previous one
#   slot_sums DISK PART...        sha256 of each partition of DISK, by GPT name
#   esp_entries DISK              the files in the ESP's /EFI/Linux, sorted, on one line

field() {
  python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1/update-manifest.json" "$2"
}

delivery() {
  local d=$tmp/$(basename "$3").d
  mkdir -p "$d"
  cp "$2/update-manifest.json" "$2/update-manifest.json.minisig" "$1" "$d/"
  chmod u+w "$d"/*
  case ${4:-} in
    flip)
      python3 - "$d/update-img.tar.zst" <<'PY'
import os, sys
p = sys.argv[1]
with open(p, "r+b") as f:
    f.seek(os.path.getsize(p) // 2)
    b = f.read(1)
    f.seek(-1, 1)
    f.write(bytes([b[0] ^ 0x40]))
PY
      ;;
    truncate) truncate -s $(($(stat -c %s "$d/update-img.tar.zst") * 2 / 3)) "$d/update-img.tar.zst" ;;
  esac
  tar -cf "$3" -C "$d" update-manifest.json update-manifest.json.minisig update-img.tar.zst
}

in_order() {
  python3 - "$log" "$@" <<'PY' || fail "the console does not show the steps in order"
import sys
text = open(sys.argv[1], "rb").read().decode("utf-8", "replace")
at = 0
for s in sys.argv[2:]:
    i = text.find(s, at)
    if i < 0:
        sys.exit(f"missing, after offset {at}: {s}")
    at = i + len(s)
PY
}

slot_sums() {
  local disk=$1 part start size
  shift
  for part in "$@"; do
    start=$(sfdisk --dump "$disk" | sed -n "s/.*start= *\([0-9]*\).*name=\"$part\".*/\1/p")
    size=$(sfdisk --dump "$disk" | sed -n "s/.*size= *\([0-9]*\).*name=\"$part\".*/\1/p")
    [[ -n "$start" && -n "$size" ]] || fail "$disk has no partition $part"
    echo "$part $(dd if="$disk" bs=512 skip="$start" count="$size" status=none | sha256sum | cut -d' ' -f1)"
  done
}

esp_entries() {
  mdir -b -i "$1@@1M" ::/EFI/Linux | sed 's|.*/||' | sort | tr '\n' ' '
}
