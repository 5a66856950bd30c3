/*
 * Network backends (-netdev user|tap, -nic): what a NIC attaches to.
 *
 * A NetClient carries Ethernet frames (no virtio header) between one NIC and
 * one backend. The NIC sends with net_client_send(); the backend delivers
 * frames to the NIC through NetPeerOps. When the NIC has no room it says so
 * (can_receive false, or receive returning false): the backend then holds
 * what it has, stops reading its source (tap fd, slirp's sockets) and waits
 * for net_client_rx_ready(), the NIC's "I have room again".
 *
 * Threads: everything runs on the main loop (or a vCPU thread) with the big
 * lock held; backends poll through the GLib default main context.
 */
#pragma once
#include "system/options.h"
#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define NET_MAC_LEN 6
/* QEMU's first default MAC; each NIC without mac= takes the next one. */
#define NET_DEFAULT_MAC { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 }
/* The longest frame either way: an Ethernet (and VLAN) header and a 64 KiB IP packet. */
#define NET_FRAME_MAX (14 + 4 + 65535)

typedef struct NetClient NetClient;

/* The NIC's side of a NetClient. */
typedef struct NetPeerOps {
    /* Whether a frame could be taken now; backends ask before reading more. */
    bool (*can_receive)(void *opaque);
    /*
     * One frame for the guest. Return false when there is no room: the
     * backend keeps the frame and delivers nothing more until the NIC calls
     * net_client_rx_ready(). A frame the NIC cannot use (too long) is dropped
     * by returning true.
     */
    bool (*receive)(void *opaque, const uint8_t *frame, size_t len);
} NetPeerOps;

/*
 * Open the backend an option describes (see net_netdev_find) as @id: a
 * -netdev, or the backend half of a -nic (which also carries model= and
 * mac=, checked by net_nic_device_opts() and the NIC). Errors name the option.
 */
NetClient *net_client_new(const VmOpt *opt, const char *id, GError **err);
void net_client_free(NetClient *nc);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(NetClient, net_client_free)
const char *net_client_id(const NetClient *nc);
/* "user" or "tap" */
const char *net_client_type(const NetClient *nc);

/* Connect the NIC; frames arriving before this are dropped. */
void net_client_attach(NetClient *nc, const NetPeerOps *ops, void *opaque);
void net_client_detach(NetClient *nc);
/* A frame from the guest to the backend. Returns false when it was dropped. */
bool net_client_send(NetClient *nc, const struct iovec *iov, unsigned cnt);
/* The NIC has room again: held frames are delivered and reading resumes. */
void net_client_rx_ready(NetClient *nc);
bool net_client_link_up(const NetClient *nc);
/*
 * Whether the backend takes a TCP segment longer than the MTU as one frame
 * (a NIC's segmentation offload then needs no segmenting): libslirp does.
 */
bool net_client_takes_large_segments(const NetClient *nc);
/* Frames dropped so far in either direction (backend queue full, tap full). */
uint64_t net_client_dropped(const NetClient *nc);

/*
 * The option that defines network backend @id: a -netdev with that id, or a
 * -nic (whose id is its id= or "__nicN", N counting -nic options from 0).
 */
const VmOpt *net_netdev_find(const VmConfig *cfg, const char *id);
/*
 * The -device options -nic implies (driver=virtio-net-pci, netdev=, mac=),
 * in order; each names the -nic in its errors. NULL on a bad model=.
 */
GPtrArray *net_nic_device_opts(const VmConfig *cfg, GError **err);
/*
 * After the NICs are made: check the -netdev options (duplicate or missing
 * ids), warn (as QEMU does) about each -netdev no -device uses, and open
 * those (an unused user backend still listens on its hostfwd ports). The
 * result (NetClient) belongs to the caller.
 */
GPtrArray *net_open_unused(const VmConfig *cfg, GError **err);

/* "52:54:00:12:34:56" (a unicast address); false otherwise. */
bool net_parse_mac(const char *s, uint8_t mac[NET_MAC_LEN]);
/* The host interface of a tap backend (the kernel's choice when ifname= was not given). */
const char *net_tap_ifname(const NetClient *nc);
