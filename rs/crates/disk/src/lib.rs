//! Assembles a GPT disk image from partition images, with GUIDs derived from a seed.
