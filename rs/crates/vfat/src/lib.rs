//! Writes a FAT32 (ESP) filesystem image from a tar with fixed volume id, label, timestamps and sorted directories.
