/* Frames the network tests send and look for: a DHCP discover, its offer. */
#pragma once
#include "net/net.h"
#include <net/ethernet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

static const uint8_t guest_mac[6] = NET_DEFAULT_MAC;

static inline void put16(uint8_t *p, uint16_t v)
{
    p[0] = v >> 8;
    p[1] = v;
}

static inline uint16_t get16(const uint8_t *p)
{
    return p[0] << 8 | p[1];
}

static inline uint16_t ip_checksum(const uint8_t *p, size_t len)
{
    uint32_t sum = 0;
    for (size_t i = 0; i < len; i += 2) {
        sum += get16(p + i);
    }
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return ~sum;
}

enum { ETH_HDR = 14, IP_HDR = 20, UDP_HDR = 8, BOOTP_LEN = 548 /* 236 fixed + 312 options, RFC 2131's minimum */ };

/* A DHCPDISCOVER from guest_mac, broadcast from 0.0.0.0:68 to 255.255.255.255:67. */
static inline size_t dhcp_discover(uint8_t *f, uint32_t xid)
{
    size_t len = ETH_HDR + IP_HDR + UDP_HDR + BOOTP_LEN;
    memset(f, 0, len);
    memset(f, 0xff, 6);
    memcpy(f + 6, guest_mac, 6);
    put16(f + 12, ETHERTYPE_IP);
    uint8_t *ip = f + ETH_HDR;
    ip[0] = 0x45;
    put16(ip + 2, IP_HDR + UDP_HDR + BOOTP_LEN);
    ip[8] = 64;
    ip[9] = IPPROTO_UDP;
    memset(ip + 16, 0xff, 4);
    put16(ip + 10, ip_checksum(ip, IP_HDR));
    uint8_t *udp = ip + IP_HDR;
    put16(udp, 68);
    put16(udp + 2, 67);
    put16(udp + 4, UDP_HDR + BOOTP_LEN);
    uint8_t *bp = udp + UDP_HDR;
    bp[0] = 1; /* BOOTREQUEST */
    bp[1] = 1; /* Ethernet */
    bp[2] = 6;
    memcpy(bp + 4, &xid, 4);
    memcpy(bp + 28, guest_mac, 6);
    static const uint8_t opts[] = { 99, 130, 83, 99, 53, 1, 1 /* DISCOVER */, 255 };
    memcpy(bp + 236, opts, sizeof(opts));
    return len;
}

/* The offered address if @frame is a DHCPOFFER for @xid, else 0. */
static inline uint32_t dhcp_offer(GBytes *frame, uint32_t xid)
{
    gsize len;
    const uint8_t *f = g_bytes_get_data(frame, &len);
    if (len < ETH_HDR + IP_HDR + UDP_HDR + 240 || get16(f + 12) != ETHERTYPE_IP) {
        return 0;
    }
    const uint8_t *ip = f + ETH_HDR;
    const uint8_t *udp = ip + (ip[0] & 0xf) * 4;
    const uint8_t *bp = udp + UDP_HDR;
    if (ip[9] != IPPROTO_UDP || get16(udp + 2) != 68 || bp[0] != 2 || memcmp(bp + 4, &xid, 4) != 0) {
        return 0;
    }
    for (const uint8_t *o = bp + 240; o + 2 < f + len && *o != 255; o += o[0] ? 2 + o[1] : 1) {
        if (o[0] == 53 && o[1] == 1 && o[2] == 2 /* OFFER */) {
            uint32_t yiaddr;
            memcpy(&yiaddr, bp + 16, 4);
            return yiaddr;
        }
    }
    return 0;
}

