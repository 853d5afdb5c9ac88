"""Providers that carry each pipeline step's outputs (and manifests) to the next step."""

RootfsInfo = provider(
    doc = "A normalized rootfs tar and its manifest (formats: ARCHITECTURE.md).",
    fields = {
        "tar": "File: the rootfs tar",
        "manifest": "File: rootfs.manifest.json",
        "source_date_epoch": "int: the SOURCE_DATE_EPOCH the tar was clamped to",
    },
)

FilesystemInfo = provider(
    doc = "A filesystem image built from a rootfs, ready to become a partition.",
    fields = {
        "image": "File: the filesystem image",
        "params": "File: JSON with the filesystem's parameters (uuid, label, sizes, …)",
        "fs_type": "string: 'ext4' or 'vfat'",
        "rootfs": "RootfsInfo the image was built from",
    },
)

DiskInfo = provider(
    doc = "A GPT disk image and the report of where each partition landed.",
    fields = {
        "image": "File: the raw disk image",
        "report": "File: disk.json (partitions, offsets, GUIDs, sha256s)",
        "filesystems": "dict: partition name -> FilesystemInfo",
    },
)
