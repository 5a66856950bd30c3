/*
 * virtio-bad-chain: a userspace virtio driver, run as root in a Linux guest,
 * that hands a device one malformed descriptor chain and reports whether the
 * device marked itself broken (NEEDS_RESET), then resets it and checks that
 * it recovers.
 *
 *   virtio-bad-chain [-q QUEUE] PCI-ADDR KIND
 *
 * PCI-ADDR is a virtio 1.x (modern) PCI function bound to no driver, e.g.
 * 0000:00:04.0. KIND is one of the chain builders in kinds[] below. Output:
 *   bad-chain KIND: status=0xNN needs_reset=yes|no
 *   reset: status=0xNN needs_reset=yes|no
 *   recover: ...        (virtio-rng and virtio-blk: a valid request completes)
 * Exit status: 0 if the device set NEEDS_RESET and a reset cleared it (and
 * the device served a valid request afterwards, where checked); 1 if not;
 * 2 for bad arguments or a device this tool cannot drive.
 *
 * The rings live in memory whose guest-physical address comes from
 * /proc/self/pagemap: a 2 MiB huge page when the kernel gives one (physically
 * contiguous, needed for the large indirect table of "oversized"), else
 * separate locked 4 KiB pages (rings in one page, buffers in another).
 *
 * Waits are busy polls (sched_yield, no sleep): a nested guest that idles
 * with a short timer armed has lost its timer interrupt for minutes in the
 * rig (docs/rig.md, "Guests that stall"), and the tool then timed out.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_pci.h>
#include <linux/virtio_ring.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#define QUEUE_SIZE_MAX 64    /* desc + avail + used rings fit one 4 KiB page */
#define RING_AVAIL_OFF 1024  /* 64 * 16-byte descriptors before it */
#define RING_USED_OFF 2048
#define INDIRECT_ENTRIES 2048 /* more than any queue (<= 1024) and QEMU's iov limit */
#define HUGE_SIZE (2u << 20)
#define PCI_COMMAND 0x04
#define PCI_COMMAND_MEMORY 0x2
#define PCI_COMMAND_MASTER 0x4
#define PCI_COMMAND_INTX_DISABLE 0x400
#define PCI_STATUS 0x06
#define PCI_STATUS_CAP_LIST 0x10
#define PCI_CAPABILITY_LIST 0x34
#define PCI_CAP_ID_VNDR 0x09

static const char *prog = "virtio-bad-chain";

static void die(int status, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));
static void die(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(status);
}

/* Memory the device reaches by DMA: a virtual mapping and its guest-physical address. */
typedef struct Dma {
    uint8_t *va;
    uint64_t pa;
    size_t len;
} Dma;

static uint64_t phys_addr(const void *va)
{
    long psz = sysconf(_SC_PAGESIZE);
    uint64_t entry;
    int fd = open("/proc/self/pagemap", O_RDONLY);
    if (fd < 0)
        die(2, "/proc/self/pagemap: %s", strerror(errno));
    off_t off = (off_t)((uintptr_t)va / psz) * 8;
    if (pread(fd, &entry, 8, off) != 8)
        die(2, "/proc/self/pagemap: short read");
    close(fd);
    uint64_t pfn = entry & ((1ull << 55) - 1);
    if (!(entry & (1ull << 63)) || !pfn)
        die(2, "/proc/self/pagemap gives no frame for %p (not root?)", va);
    return pfn * psz + (uintptr_t)va % psz;
}

static bool dma_alloc_huge(Dma *d)
{
    void *p = mmap(NULL, HUGE_SIZE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_LOCKED | MAP_POPULATE, -1, 0);
    if (p == MAP_FAILED) {
        /* No huge page reserved yet: ask for a few and try once more. */
        int fd = open("/proc/sys/vm/nr_hugepages", O_WRONLY);
        if (fd >= 0) {
            if (write(fd, "4", 1) < 0) { /* fall through to the retry either way */ }
            close(fd);
        }
        p = mmap(NULL, HUGE_SIZE, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_LOCKED | MAP_POPULATE, -1, 0);
        if (p == MAP_FAILED)
            return false;
    }
    memset(p, 0, HUGE_SIZE);
    d->va = p;
    d->pa = phys_addr(p);
    d->len = HUGE_SIZE;
    return true;
}

static void dma_alloc_page(Dma *d)
{
    long psz = sysconf(_SC_PAGESIZE);
    void *p = mmap(NULL, psz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (p == MAP_FAILED || mlock(p, psz) < 0)
        die(2, "cannot allocate and lock a page: %s", strerror(errno));
    memset(p, 0, psz);
    d->va = p;
    d->pa = phys_addr(p);
    d->len = psz;
}

/* The device: its PCI function, its virtio structures and our queue. */
typedef struct Dev {
    const char *addr;
    char path[256];
    uint16_t virtio_id;
    volatile uint8_t *common, *isr, *notify_base;
    uint32_t notify_mult;
    uint8_t *bars[6];
    uint16_t qindex, qsize, notify_off;
    bool indirect; /* VIRTIO_RING_F_INDIRECT_DESC negotiated */
    Dma ring, buf, table; /* table: the indirect descriptor table (huge page only) */
    struct vring_desc *desc;
    struct vring_avail *avail;
    volatile struct vring_used *used;
    uint16_t avail_idx;
} Dev;

static void *bar_map(Dev *dv, unsigned bar)
{
    if (bar > 5)
        die(2, "%s: virtio capability names BAR %u", dv->addr, bar);
    if (!dv->bars[bar]) {
        char res[300];
        struct stat st;
        snprintf(res, sizeof(res), "%s/resource%u", dv->path, bar);
        int fd = open(res, O_RDWR | O_SYNC);
        if (fd < 0 || fstat(fd, &st) < 0)
            die(2, "%s: %s", res, strerror(errno));
        void *p = mmap(NULL, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
            die(2, "%s: mmap: %s (is it a memory BAR?)", res, strerror(errno));
        close(fd);
        dv->bars[bar] = p;
    }
    return dv->bars[bar];
}

static uint32_t le32_at(const uint8_t *p)
{
    return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Enable memory decoding and bus mastering, no INTx: we poll. Find the virtio structures. */
static void pci_setup(Dev *dv)
{
    uint8_t cfg[256];
    char file[300], drv[300];

    snprintf(dv->path, sizeof(dv->path), "/sys/bus/pci/devices/%s", dv->addr);
    snprintf(drv, sizeof(drv), "%s/driver", dv->path);
    if (access(dv->path, F_OK) < 0)
        die(2, "PCI-ADDR %s: no such device in /sys/bus/pci/devices", dv->addr);
    if (access(drv, F_OK) == 0)
        die(2, "PCI-ADDR %s is bound to a driver; unbind it first (echo %s > %s/unbind)",
            dv->addr, dv->addr, drv);
    snprintf(file, sizeof(file), "%s/config", dv->path);
    int fd = open(file, O_RDWR);
    if (fd < 0 || pread(fd, cfg, sizeof(cfg), 0) != sizeof(cfg))
        die(2, "%s: cannot read 256 bytes (not root?)", file);
    uint16_t vendor = cfg[0] | cfg[1] << 8, device = cfg[2] | cfg[3] << 8;
    if (vendor != 0x1af4 || device < 0x1000 || device > 0x107f)
        die(2, "PCI-ADDR %s is %04x:%04x, not a virtio device", dv->addr, vendor, device);
    dv->virtio_id = device >= 0x1040 ? device - 0x1040 : (cfg[0x2e] | cfg[0x2f] << 8);
    uint16_t cmd = (cfg[PCI_COMMAND] | cfg[PCI_COMMAND + 1] << 8) | PCI_COMMAND_MEMORY |
                   PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE;
    uint8_t cmdle[2] = {cmd & 0xff, cmd >> 8};
    if (pwrite(fd, cmdle, 2, PCI_COMMAND) != 2)
        die(2, "%s: cannot write the command register: %s", file, strerror(errno));
    close(fd);

    if (!(cfg[PCI_STATUS] & PCI_STATUS_CAP_LIST))
        die(2, "PCI-ADDR %s has no capability list", dv->addr);
    unsigned hops = 0;
    for (unsigned pos = cfg[PCI_CAPABILITY_LIST] & ~3u; pos; pos = cfg[pos + 1] & ~3u) {
        if (pos > sizeof(cfg) - 16 || ++hops > 48)
            die(2, "PCI-ADDR %s: malformed capability list", dv->addr);
        if (cfg[pos] != PCI_CAP_ID_VNDR)
            continue;
        const uint8_t *c = cfg + pos;
        uint8_t type = c[VIRTIO_PCI_CAP_CFG_TYPE], bar = c[VIRTIO_PCI_CAP_BAR];
        uint32_t off = le32_at(c + VIRTIO_PCI_CAP_OFFSET);
        /* The first capability of each type is the one to use (spec 4.1.4). */
        switch (type) {
        case VIRTIO_PCI_CAP_COMMON_CFG:
            if (!dv->common)
                dv->common = (uint8_t *)bar_map(dv, bar) + off;
            break;
        case VIRTIO_PCI_CAP_NOTIFY_CFG:
            if (!dv->notify_base) {
                dv->notify_base = (uint8_t *)bar_map(dv, bar) + off;
                dv->notify_mult = le32_at(c + VIRTIO_PCI_NOTIFY_CAP_MULT);
            }
            break;
        case VIRTIO_PCI_CAP_ISR_CFG:
            if (!dv->isr)
                dv->isr = (uint8_t *)bar_map(dv, bar) + off;
            break;
        }
    }
    if (!dv->common || !dv->notify_base || !dv->isr)
        die(2, "PCI-ADDR %s lacks the virtio 1.x common/notify/ISR capabilities (a legacy-only device?)",
            dv->addr);
}

/* Common configuration registers, by offset (linux/virtio_pci.h). */
static uint8_t rd8(Dev *dv, unsigned off) { return dv->common[off]; }
static uint16_t rd16(Dev *dv, unsigned off) { return *(volatile uint16_t *)(dv->common + off); }
static uint32_t rd32(Dev *dv, unsigned off) { return *(volatile uint32_t *)(dv->common + off); }
static void wr8(Dev *dv, unsigned off, uint8_t v) { dv->common[off] = v; }
static void wr16(Dev *dv, unsigned off, uint16_t v) { *(volatile uint16_t *)(dv->common + off) = v; }
static void wr32(Dev *dv, unsigned off, uint32_t v) { *(volatile uint32_t *)(dv->common + off) = v; }
static void wr64(Dev *dv, unsigned off, uint64_t v)
{
    wr32(dv, off, (uint32_t)v);
    wr32(dv, off + 4, v >> 32);
}

static uint8_t status(Dev *dv) { return rd8(dv, VIRTIO_PCI_COMMON_STATUS); }

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Write 0 and wait for the device to read back 0 (spec 4.1.4.3.2). */
static bool device_reset(Dev *dv)
{
    wr8(dv, VIRTIO_PCI_COMMON_STATUS, 0);
    for (double end = now() + 10; now() < end; sched_yield())
        if (status(dv) == 0)
            return true;
    return false;
}

/* Reset, negotiate, set up queue dv->qindex on fresh rings, DRIVER_OK. */
static void device_init(Dev *dv)
{
    if (!device_reset(dv))
        die(1, "%s: the device did not finish a reset (status=0x%02x)", dv->addr, status(dv));
    wr8(dv, VIRTIO_PCI_COMMON_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE);
    wr8(dv, VIRTIO_PCI_COMMON_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    wr32(dv, VIRTIO_PCI_COMMON_DFSELECT, 0);
    uint32_t lo = rd32(dv, VIRTIO_PCI_COMMON_DF);
    wr32(dv, VIRTIO_PCI_COMMON_DFSELECT, 1);
    uint32_t hi = rd32(dv, VIRTIO_PCI_COMMON_DF);
    if (!(hi & (1u << (VIRTIO_F_VERSION_1 - 32))))
        die(2, "%s: the device does not offer VIRTIO_F_VERSION_1", dv->addr);
    dv->indirect = lo & (1u << VIRTIO_RING_F_INDIRECT_DESC);
    wr32(dv, VIRTIO_PCI_COMMON_GFSELECT, 0);
    wr32(dv, VIRTIO_PCI_COMMON_GF, dv->indirect ? 1u << VIRTIO_RING_F_INDIRECT_DESC : 0);
    wr32(dv, VIRTIO_PCI_COMMON_GFSELECT, 1);
    wr32(dv, VIRTIO_PCI_COMMON_GF, 1u << (VIRTIO_F_VERSION_1 - 32));
    wr8(dv, VIRTIO_PCI_COMMON_STATUS,
        VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
    if (!(status(dv) & VIRTIO_CONFIG_S_FEATURES_OK))
        die(1, "%s: the device refused FEATURES_OK", dv->addr);

    if (dv->qindex >= rd16(dv, VIRTIO_PCI_COMMON_NUMQ))
        die(2, "-q %u: the device has %u queues", dv->qindex, rd16(dv, VIRTIO_PCI_COMMON_NUMQ));
    wr16(dv, VIRTIO_PCI_COMMON_Q_SELECT, dv->qindex);
    uint16_t max = rd16(dv, VIRTIO_PCI_COMMON_Q_SIZE);
    if (!max)
        die(2, "-q %u: the queue is not available", dv->qindex);
    dv->qsize = max < QUEUE_SIZE_MAX ? max : QUEUE_SIZE_MAX;
    memset(dv->ring.va, 0, 4096);
    dv->desc = (struct vring_desc *)dv->ring.va;
    dv->avail = (struct vring_avail *)(dv->ring.va + RING_AVAIL_OFF);
    dv->used = (struct vring_used *)(dv->ring.va + RING_USED_OFF);
    dv->avail_idx = 0;
    wr16(dv, VIRTIO_PCI_COMMON_Q_SIZE, dv->qsize);
    wr16(dv, VIRTIO_PCI_COMMON_Q_MSIX, VIRTIO_MSI_NO_VECTOR);
    wr64(dv, VIRTIO_PCI_COMMON_Q_DESCLO, dv->ring.pa);
    wr64(dv, VIRTIO_PCI_COMMON_Q_AVAILLO, dv->ring.pa + RING_AVAIL_OFF);
    wr64(dv, VIRTIO_PCI_COMMON_Q_USEDLO, dv->ring.pa + RING_USED_OFF);
    dv->notify_off = rd16(dv, VIRTIO_PCI_COMMON_Q_NOFF);
    wr16(dv, VIRTIO_PCI_COMMON_Q_ENABLE, 1);
    wr8(dv, VIRTIO_PCI_COMMON_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
                                          VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
}

/* Make the chain at @head available and notify the queue. */
static void submit(Dev *dv, uint16_t head)
{
    dv->avail->ring[dv->avail_idx % dv->qsize] = head;
    __atomic_thread_fence(__ATOMIC_RELEASE);
    dv->avail->idx = ++dv->avail_idx;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    *(volatile uint16_t *)(dv->notify_base + (size_t)dv->notify_off * dv->notify_mult) = dv->qindex;
}

static void set_desc(struct vring_desc *d, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
    d->addr = addr;
    d->len = len;
    d->flags = flags;
    d->next = next;
}

/* The malformed chains. Each writes descriptors and returns the head. */
static uint16_t build_loop(Dev *dv)
{
    set_desc(&dv->desc[0], dv->buf.pa, 16, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
    set_desc(&dv->desc[1], dv->buf.pa + 16, 16, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 0);
    return 0;
}

/*
 * 1 MiB at 64 TiB. (QEMU maps a small buffer outside RAM through a bounce
 * buffer, as if it were MMIO, and drops the data; a large one it refuses.)
 */
static uint16_t build_outside_ram(Dev *dv)
{
    set_desc(&dv->desc[0], 1ull << 46, 1u << 20, VRING_DESC_F_WRITE, 0);
    return 0;
}

static uint16_t build_oversized(Dev *dv)
{
    if (!dv->table.va)
        die(2, "oversized: needs a 2 MiB huge page for its indirect table (none available)");
    if (!dv->indirect)
        printf("note: the device does not offer INDIRECT_DESC; using an indirect table anyway\n");
    struct vring_desc *t = (struct vring_desc *)dv->table.va;
    for (unsigned i = 0; i < INDIRECT_ENTRIES; i++)
        set_desc(&t[i], dv->buf.pa + i % 64, 1,
                 VRING_DESC_F_WRITE | (i + 1 < INDIRECT_ENTRIES ? VRING_DESC_F_NEXT : 0), i + 1);
    set_desc(&dv->desc[0], dv->table.pa, INDIRECT_ENTRIES * sizeof(*t), VRING_DESC_F_INDIRECT, 0);
    return 0;
}

static uint16_t build_write_before_read(Dev *dv)
{
    set_desc(&dv->desc[0], dv->buf.pa, 16, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
    set_desc(&dv->desc[1], dv->buf.pa + 16, 16, 0, 0);
    return 0;
}

static const struct {
    const char *name;
    uint16_t (*build)(Dev *dv);
} kinds[] = {
    {"loop", build_loop},                       /* next pointers form a cycle */
    {"outside-ram", build_outside_ram},         /* 1 MiB buffer at 64 TiB */
    {"oversized", build_oversized},             /* indirect chain of 2048 > queue size */
    {"write-before-read", build_write_before_read}, /* device-writable before readable */
};

/* Poll the status for NEEDS_RESET for up to @secs; return the last value read. */
static uint8_t wait_needs_reset(Dev *dv, double secs)
{
    uint8_t s = status(dv);
    for (double end = now() + secs; !(s & VIRTIO_CONFIG_S_NEEDS_RESET) && now() < end; s = status(dv))
        sched_yield();
    (void)*dv->isr; /* reading the ISR acknowledges the config interrupt, if any */
    return s;
}

/* After the reset: a valid request must complete. Returns false on failure; -1 when not checked. */
static int check_recovery(Dev *dv)
{
    uint16_t head = 0;
    memset(dv->buf.va, 0xa5, 1024);
    switch (dv->virtio_id) {
    case VIRTIO_ID_RNG:
        set_desc(&dv->desc[0], dv->buf.pa, 64, VRING_DESC_F_WRITE, 0);
        break;
    case VIRTIO_ID_BLOCK: {
        /* Read sector 0: header (type 0 = IN, sector 0), 512 data bytes, status byte. */
        memset(dv->buf.va, 0, 16);
        dv->buf.va[1024 - 1] = 0xff;
        set_desc(&dv->desc[0], dv->buf.pa, 16, VRING_DESC_F_NEXT, 1);
        set_desc(&dv->desc[1], dv->buf.pa + 512, 512, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 2);
        set_desc(&dv->desc[2], dv->buf.pa + 1024 - 1, 1, VRING_DESC_F_WRITE, 0);
        break;
    }
    default:
        return -1;
    }
    submit(dv, head);
    for (double end = now() + 10; now() < end; sched_yield()) {
        if (dv->used->idx == dv->avail_idx) {
            __atomic_thread_fence(__ATOMIC_ACQUIRE);
            uint32_t len = dv->used->ring[0].len;
            if (dv->virtio_id == VIRTIO_ID_BLOCK) {
                printf("recover: virtio-blk read of sector 0 completed, status=%u\n", dv->buf.va[1023]);
                return dv->buf.va[1023] == 0;
            }
            printf("recover: virtio-rng returned %u bytes\n", len);
            return len > 0;
        }
        if (status(dv) & VIRTIO_CONFIG_S_NEEDS_RESET)
            break;
    }
    printf("recover: no valid request completed (status=0x%02x)\n", status(dv));
    return 0;
}

int main(int argc, char **argv)
{
    Dev dv = {0};
    int opt;
    while ((opt = getopt(argc, argv, "q:")) != -1) {
        if (opt != 'q')
            die(2, "usage: %s [-q QUEUE] PCI-ADDR KIND", prog);
        char *end;
        unsigned long q = strtoul(optarg, &end, 0);
        if (*end || end == optarg || q > 0xffff)
            die(2, "-q %s: not a queue index", optarg);
        dv.qindex = q;
    }
    if (argc - optind != 2)
        die(2, "usage: %s [-q QUEUE] PCI-ADDR KIND (KIND: loop, outside-ram, oversized, write-before-read)",
            prog);
    dv.addr = argv[optind];
    const char *kind = argv[optind + 1];
    unsigned k;
    for (k = 0; k < sizeof(kinds) / sizeof(kinds[0]) && strcmp(kinds[k].name, kind); k++)
        ;
    if (k == sizeof(kinds) / sizeof(kinds[0]))
        die(2, "KIND %s: unknown (loop, outside-ram, oversized, write-before-read)", kind);

    setvbuf(stdout, NULL, _IOLBF, 0);
    pci_setup(&dv);
    Dma huge;
    if (dma_alloc_huge(&huge)) {
        dv.ring = (Dma){huge.va, huge.pa, 4096};
        dv.buf = (Dma){huge.va + 4096, huge.pa + 4096, 4096};
        dv.table = (Dma){huge.va + 65536, huge.pa + 65536, INDIRECT_ENTRIES * sizeof(struct vring_desc)};
    } else {
        dma_alloc_page(&dv.ring);
        dma_alloc_page(&dv.buf);
    }

    device_init(&dv);
    submit(&dv, kinds[k].build(&dv));
    uint8_t s = wait_needs_reset(&dv, 10);
    bool broke = s & VIRTIO_CONFIG_S_NEEDS_RESET;
    printf("bad-chain %s: status=0x%02x needs_reset=%s\n", kind, s, broke ? "yes" : "no");

    bool reset_ok = device_reset(&dv);
    s = status(&dv);
    printf("reset: status=0x%02x needs_reset=%s\n", s, s & VIRTIO_CONFIG_S_NEEDS_RESET ? "yes" : "no");
    int recovered = -1;
    if (reset_ok) {
        device_init(&dv);
        recovered = check_recovery(&dv);
        device_reset(&dv);
    }
    return broke && reset_ok && recovered != 0 ? 0 : 1;
}
