#!/bin/sh
# Baked into the guest image (tests/vm/build-image.sh), run by bockerfs-vm.service (Delegate=yes) when
# the kernel command line says bockerfs.run: mounts the run's own 9p share (tag "job") and runs the
# guest.sh the host put there (so changing guest.sh needs no new image). Its exit code is the unit's;
# the unit powers the machine off either way.
set -eu
mkdir -p /run/bockerfs-vm
mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288 job /run/bockerfs-vm
exec sh /run/bockerfs-vm/guest.sh
