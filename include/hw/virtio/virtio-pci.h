/*
 * The virtio 1.x PCI transport (modern only: device ID 0x1040 + type,
 * revision 1). BAR 1 holds MSI-X; BAR 4 (64-bit, prefetchable) holds the
 * common configuration, ISR, device configuration and notification areas,
 * found by the guest through vendor-specific capabilities. Queue
 * notifications are ioeventfds where KVM offers them.
 */
#pragma once
#include "hw/core/device.h"
#include "hw/virtio/virtio.h"

typedef struct VirtioPci VirtioPci;

/*
 * Put @vdev (set up with virtio_device_init) on the PCI bus at @devfn, with
 * PCI class @class_code (class << 16 | subclass << 8 | prog-if) and one
 * MSI-X vector per queue plus one for configuration changes. @name names
 * the function in log lines ("virtio-blk-pci"); the PCI address is appended.
 */
VirtioPci *virtio_pci_new(const DeviceContext *ctx, uint8_t devfn, VirtioDevice *vdev, const char *name,
                          uint32_t class_code, GError **err);
/*
 * Make the function part of the machine's migration stream, as sections
 * "BB:DD.F/<name>" (configuration space and transport registers), then
 * ".../msix", ".../vq" (instance = queue index) and last ".../device":
 * @dev_vmsd of @dev_opaque, the device's own state with its VirtioDevice
 * nested (virtio_device_vmsd). That order is the load order: BARs are
 * mapped (and queue ioeventfds registered) before MSI-X binds its vectors,
 * both before the queues' rings are mapped and, last, the device's
 * post_load starts it (virtio_device_resume). Unregistered by virtio_pci_free.
 */
void virtio_pci_register_state(VirtioPci *vp, const VMStateDescription *dev_vmsd, void *dev_opaque);
/* Stop the device, unbind its interrupts and leave the bus. */
void virtio_pci_free(VirtioPci *vp);
