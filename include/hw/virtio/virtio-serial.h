/* virtio-serial-pci and its console port virtconsole: rows of the -device table. */
#pragma once
#include "hw/core/device.h"

extern const DeviceType virtio_serial_pci_device;
extern const DeviceType virtconsole_device;
