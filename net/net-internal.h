/* What net.c shares with its backends (slirp.c, tap.c). */
#pragma once
#include "net/net.h"

typedef struct NetBackendType {
    const char *name; /* the -netdev type */
    /* Keys the backend takes besides type and id. */
    const char *const *keys;
    bool large_segments; /* see net_client_takes_large_segments */
    /* Open the backend; @id is already checked. Errors name @opt. */
    NetClient *(*open)(const VmOpt *opt, const char *id, GError **err);
    /* A frame from the guest (@len bytes, contiguous when @cnt is 1). */
    bool (*send)(NetClient *nc, const struct iovec *iov, unsigned cnt, size_t len);
    /* The peer has room again and nothing is held: read more. */
    void (*rx_resume)(NetClient *nc);
    void (*free)(NetClient *nc);
} NetBackendType;

/* The generic part each backend embeds (and gets back from with container_of). */
struct NetClient {
    const NetBackendType *type;
    char *id;
    const NetPeerOps *peer;
    void *peer_opaque;
    GQueue held; /* GBytes frames for the peer, held while it has no room */
    bool blocked; /* the peer said it has no room; cleared by net_client_rx_ready */
    bool link_up;
    uint64_t dropped;
};

extern const NetBackendType net_user_type;
extern const NetBackendType net_tap_type;

void net_client_init(NetClient *nc, const NetBackendType *type, const char *id);
/* A frame from the backend for the peer: delivered, held, or (held queue full) dropped. */
void net_client_deliver(NetClient *nc, const uint8_t *frame, size_t len);
/* Whether the backend should read more now: a peer with room and nothing held. */
bool net_client_can_deliver(NetClient *nc);
