"""The atwill guest image: a Debian kernel and busybox on a small bootable disk."""
