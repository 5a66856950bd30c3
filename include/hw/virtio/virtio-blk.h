/* virtio-blk-pci: a disk backed by a -drive or -blockdev (see block/block.h). */
#pragma once
#include "hw/core/device.h"

extern const DeviceType virtio_blk_pci_type;
