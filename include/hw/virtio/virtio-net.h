/*
 * virtio-net-pci: a virtio 1.x network card on a NetClient backend
 * (-device virtio-net-pci,netdev=ID[,mac=...], or implied by -nic).
 */
#pragma once
#include "hw/core/device.h"
#include "hw/virtio/virtio.h"
#include "net/net.h"

typedef struct VirtioNet VirtioNet;

extern const DeviceType virtio_net_pci_type;

/*
 * The device without a transport (the -device hook adds the PCI one; tests
 * set their own): takes @nc (may be NULL: a NIC with no cable).
 */
VirtioNet *virtio_net_new(Machine *m, NetClient *nc, const uint8_t mac[NET_MAC_LEN]);
VirtioDevice *virtio_net_vdev(VirtioNet *n);
void virtio_net_free(VirtioNet *n);
