//! Compares two builds and names the artifact, partition, file and attribute that differ.
