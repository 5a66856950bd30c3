/* virtio-blk-pci: a disk backed by a -drive or -blockdev (see block/block.h). */
#pragma once
#include "block/block.h"
#include "hw/core/device.h"
#include "hw/virtio/virtio.h"

#define VIRTIO_BLK_DEFAULT_QUEUE_SIZE 256

typedef struct VirtioBlkConf {
    const char *serial; /* NULL: the drive's serial=, if any */
    unsigned queue_size;
    bool discard, write_zeroes; /* offer the requests (not for read-only drives) */
} VirtioBlkConf;

extern const DeviceType virtio_blk_pci_type;

/*
 * The device without its transport (virtio_blk_pci_type adds the PCI
 * function): it owns @blk from here on. Its queue is read by its own
 * thread from DRIVER_OK until reset.
 */
VirtioDevice *virtio_blk_new(Machine *m, BlockBackend *blk, const VirtioBlkConf *conf);
void virtio_blk_free(VirtioDevice *vdev);
