//! What runs on a node, in its initramfs and its root filesystem: the device-mapper control
//! interface ([`dm`]), partitions by GPT name from sysfs ([`block`]), and the verified root: the
//! slot a root hash belongs to, mapped through dm-verity ([`root`]).
//!
//! Built into static binaries (`icos-veritysetup`, `icos-upgrade`) by the pinned toolchain, so
//! its dependencies stay small.

pub mod block;
pub mod disk;
pub mod dm;
pub mod root;
