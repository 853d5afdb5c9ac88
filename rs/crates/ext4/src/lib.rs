//! Writes an ext4 filesystem image directly from a normalized rootfs tar, without root, mounts or host tools.
