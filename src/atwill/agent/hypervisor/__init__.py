"""The node's hypervisor driver: QEMU over QMP, image cache, config drive, taps."""
