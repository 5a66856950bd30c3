/* virtio-rng-pci: a row of the -device table. */
#pragma once
#include "hw/core/device.h"

extern const DeviceType virtio_rng_pci_device;
