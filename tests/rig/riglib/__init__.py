"""The rig: a nested test machine with real KVM (see docs/rig.md)."""
