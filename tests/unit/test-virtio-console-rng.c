/*
 * virtio-serial-pci + virtconsole and virtio-rng-pci made from command-line
 * options, driven the way a guest driver drives them: through the PCI
 * capabilities and the common configuration in BAR memory, rings in a
 * test's RAM, notifications by MMIO writes. The console's far end is a real
 * socket chardev with a test client; the rng reads /dev/urandom.
 */
#include "chardev/chardev.h"
#include "main-loop-wait.h"
#include "hw/core/device.h"
#include "hw/pci/pci-host.h"
#include "hw/pci/pci.h"
#include "hw/virtio/virtio.h"
#include <glib/gstdio.h>
#include <linux/virtio_pci.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define RAM_SIZE (4u << 20)
#define ECAM 0xb0000000ULL
#define QSIZE 8
#define RINGS 0x1000  /* each queue's rings in one 4 KiB page from here */
#define BUFS 0x100000 /* data buffers from 1 MiB up */

typedef struct {
    uint64_t desc, avail, used;
    uint16_t next_desc, avail_idx, used_seen;
} Queue;

typedef struct {
    Machine m;
    uint8_t *ram;
    VmConfig *cfg;
    PciHost *host;
    DeviceContext ctx;
    uint8_t devfn;
    uint64_t common, notify, device; /* guest-physical addresses of the structures */
    uint32_t notify_mult;
    Queue q[2];
    uint64_t next_buf;
} Rig;

static void *gpa_to_hva(Machine *m, uint64_t gpa, uint64_t len)
{
    Rig *r = (Rig *)m;
    return gpa + len >= gpa && gpa + len <= RAM_SIZE ? r->ram + gpa : NULL;
}

static void ignore_gsi(void *opaque, unsigned gsi, bool level)
{
}

static void spin(int n)
{
    for (int i = 0; i < n; i++) {
        g_main_context_iteration(NULL, FALSE);
        g_usleep(500);
    }
}

static void mmio_write(Rig *r, uint64_t addr, uint64_t v, unsigned len)
{
    uint8_t data[8];
    for (unsigned i = 0; i < 8; i++) {
        data[i] = v >> (8 * i);
    }
    g_assert_true(io_map_dispatch(r->m.mmio, addr, data, len, true));
}

static uint64_t mmio_read(Rig *r, uint64_t addr, unsigned len)
{
    uint8_t data[8] = { 0 };
    g_assert_true(io_map_dispatch(r->m.mmio, addr, data, len, false));
    uint64_t v = 0;
    for (unsigned i = 0; i < len; i++) {
        v |= (uint64_t)data[i] << (8 * i);
    }
    return v;
}

static uint32_t cfg_read(Rig *r, unsigned reg, unsigned size)
{
    return pci_bus_config_read(pci_host_bus(r->host), r->devfn, reg, size);
}

static uint64_t bar_address(Rig *r, unsigned bar)
{
    uint64_t lo = cfg_read(r, PCI_BAR0 + 4 * bar, 4) & ~0xfULL;
    return lo | (uint64_t)cfg_read(r, PCI_BAR0 + 4 * bar + 4, 4) << 32;
}

/* What a driver does first: find the virtio structures through the vendor capabilities. */
static void find_structures(Rig *r)
{
    for (unsigned cap = cfg_read(r, PCI_CAPABILITY_LIST, 1); cap; cap = cfg_read(r, cap + 1, 1)) {
        if (cfg_read(r, cap, 1) != 0x09) {
            continue;
        }
        uint64_t addr = bar_address(r, cfg_read(r, cap + VIRTIO_PCI_CAP_BAR, 1)) +
                        cfg_read(r, cap + VIRTIO_PCI_CAP_OFFSET, 4);
        switch (cfg_read(r, cap + VIRTIO_PCI_CAP_CFG_TYPE, 1)) {
        case VIRTIO_PCI_CAP_COMMON_CFG:
            r->common = addr;
            break;
        case VIRTIO_PCI_CAP_NOTIFY_CFG:
            r->notify = addr;
            r->notify_mult = cfg_read(r, cap + 16, 4);
            break;
        case VIRTIO_PCI_CAP_DEVICE_CFG:
            r->device = addr;
            break;
        }
    }
    g_assert_true(r->common && r->notify && r->device);
}

static void set_status(Rig *r, uint8_t status)
{
    mmio_write(r, r->common + VIRTIO_PCI_COMMON_STATUS, status, 1);
}

/* Negotiate VERSION_1 only (no event index: every kick arrives) and enable @nq queues. */
static void driver_init(Rig *r, unsigned nq)
{
    set_status(r, 0);
    set_status(r, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    mmio_write(r, r->common + VIRTIO_PCI_COMMON_GFSELECT, 1, 4);
    mmio_write(r, r->common + VIRTIO_PCI_COMMON_GF, 1, 4); /* bit 32 */
    mmio_write(r, r->common + VIRTIO_PCI_COMMON_GFSELECT, 0, 4);
    mmio_write(r, r->common + VIRTIO_PCI_COMMON_GF, 0, 4);
    set_status(r, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
    g_assert_cmpuint(mmio_read(r, r->common + VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_CONFIG_S_FEATURES_OK, !=, 0);
    g_assert_cmpuint(mmio_read(r, r->common + VIRTIO_PCI_COMMON_NUMQ, 2), ==, nq);
    memset(r->ram, 0, BUFS);
    r->next_buf = BUFS;
    for (unsigned i = 0; i < nq; i++) {
        Queue *q = &r->q[i];
        uint64_t base = RINGS + 0x1000ULL * i;
        *q = (Queue){ .desc = base, .avail = base + 16 * QSIZE, .used = base + 0x800 };
        mmio_write(r, r->common + VIRTIO_PCI_COMMON_Q_SELECT, i, 2);
        mmio_write(r, r->common + VIRTIO_PCI_COMMON_Q_SIZE, QSIZE, 2);
        mmio_write(r, r->common + VIRTIO_PCI_COMMON_Q_DESCLO, q->desc, 4);
        mmio_write(r, r->common + VIRTIO_PCI_COMMON_Q_AVAILLO, q->avail, 4);
        mmio_write(r, r->common + VIRTIO_PCI_COMMON_Q_USEDLO, q->used, 4);
        mmio_write(r, r->common + VIRTIO_PCI_COMMON_Q_ENABLE, 1, 2);
    }
    set_status(r, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK |
                      VIRTIO_CONFIG_S_DRIVER_OK);
}

/* Build the machine's PCI bus and the devices of @argv, as pc.c does, and drive the first one. */
static void rig_init(Rig *r, const char *const *argv)
{
    *r = (Rig){ .m = { .pio = io_map_new("pio"), .mmio = io_map_new("mmio"), .gpa_to_hva = gpa_to_hva } };
    r->ram = g_malloc0(RAM_SIZE);
    g_autoptr(GPtrArray) args = g_ptr_array_new();
    g_ptr_array_add(args, "vireo");
    for (; *argv; argv++) {
        g_ptr_array_add(args, (gpointer)*argv);
    }
    g_autoptr(GError) err = NULL;
    r->cfg = vm_config_new();
    g_assert_true(vm_config_parse(r->cfg, args->len, (char **)args->pdata, &err));
    PciBusConfig pci = {
        .intx = { ignore_gsi, r, 0 },
        .io_start = 0xc000, .io_end = 0x10000,
        .mmio32_start = 0xc0000000, .mmio32_end = 0xfec00000,
        .mmio64_start = 0x800000000ULL, .mmio64_end = 0x1000000000ULL,
    };
    r->host = pci_host_new(&r->m, &pci, ECAM, &err);
    g_assert_no_error(err);
    r->ctx = (DeviceContext){ &r->m, pci_host_bus(r->host), r->cfg, g_ptr_array_new() };
    g_assert_true(device_create_all(&r->ctx, r->cfg->devices, &err));
    g_assert_no_error(err);
    g_assert_true(pci_bus_assign_resources(pci_host_bus(r->host), &err));
    r->devfn = PCI_DEVFN(2, 0);
    g_assert_cmphex(cfg_read(r, PCI_VENDOR_ID, 2), ==, 0x1af4);
    find_structures(r);
}

static void rig_fini(Rig *r)
{
    device_destroy_all(r->ctx.created);
    g_ptr_array_unref(r->ctx.created);
    pci_host_free(r->host);
    io_map_free(r->m.pio);
    io_map_free(r->m.mmio);
    vm_config_free(r->cfg);
    g_free(r->ram);
}

/* Post one buffer of @len bytes (@data: device-readable, else device-writable); returns its address. */
static uint64_t post(Rig *r, unsigned qi, const void *data, uint32_t len)
{
    Queue *q = &r->q[qi];
    uint64_t addr = r->next_buf;
    r->next_buf += (len + 15) & ~15u;
    g_assert_cmpuint(r->next_buf, <=, RAM_SIZE);
    if (data) {
        memcpy(r->ram + addr, data, len);
    }
    unsigned d = q->next_desc++ % QSIZE;
    struct vring_desc *desc = (struct vring_desc *)(r->ram + q->desc);
    desc[d] = (struct vring_desc){ addr, len, data ? 0 : VRING_DESC_F_WRITE, 0 };
    struct vring_avail *avail = (struct vring_avail *)(r->ram + q->avail);
    avail->ring[q->avail_idx % QSIZE] = d;
    __atomic_store_n(&avail->idx, ++q->avail_idx, __ATOMIC_RELEASE);
    return addr;
}

static void kick(Rig *r, unsigned qi)
{
    mmio_write(r, r->notify + qi * r->notify_mult, qi, 2);
}

static uint16_t used_idx(Rig *r, unsigned qi)
{
    return __atomic_load_n(&((struct vring_used *)(r->ram + r->q[qi].used))->idx, __ATOMIC_ACQUIRE);
}

/* Length the device wrote into used entry @n of queue @qi. */
static uint32_t used_len(Rig *r, unsigned qi, unsigned n)
{
    return ((struct vring_used *)(r->ram + r->q[qi].used))->ring[n % QSIZE].len;
}

enum { RX = 0, TX = 1 };

typedef struct {
    Rig r;
    char *dir, *path;
    int client;
} Console;

static void console_setup(Console *c)
{
    c->dir = g_dir_make_tmp("vireo-vcon-XXXXXX", NULL);
    c->path = g_build_filename(c->dir, "hvc.sock", NULL);
    g_autofree char *chardev = g_strdup_printf("socket,id=c0,path=%s,server=on,wait=off", c->path);
    const char *argv[] = { "-chardev", chardev, "-device", "virtio-serial-pci", "-device", "virtconsole,chardev=c0",
                           NULL };
    rig_init(&c->r, argv);
    driver_init(&c->r, 2);
    c->client = unix_client(c->path);
    /* The chardev accepts on the main loop and drops output until then: wait until a byte gets through. */
    uint8_t sync;
    size_t got = 0;
    for (int i = 0; i < 20 && !got; i++) {
        post(&c->r, TX, ".", 1);
        kick(&c->r, TX);
        got = client_read(c->client, &sync, 1, 50);
    }
    g_assert_cmpuint(got, ==, 1);
    driver_init(&c->r, 2); /* fresh rings for the test */
}

static void console_teardown(Console *c)
{
    close(c->client);
    rig_fini(&c->r);
    g_rmdir(c->dir);
    g_free(c->dir);
    g_free(c->path);
}

/* Guest output reaches the socket client; the chain comes back used. */
static void test_console_output(void)
{
    Console c;
    console_setup(&c);
    g_assert_cmpuint(mmio_read(&c.r, c.r.device + 4, 4), ==, 1); /* max_nr_ports */
    post(&c.r, TX, "hello ", 6);
    post(&c.r, TX, "from hvc0\n", 10);
    kick(&c.r, TX);
    uint8_t buf[64];
    size_t n = client_read(c.client, buf, 16, 1000);
    g_assert_cmpmem(buf, n, "hello from hvc0\n", 16);
    ITERATE_UNTIL(used_idx(&c.r, TX) == 2);
    g_assert_cmpuint(used_idx(&c.r, TX), ==, 2);
    /* Emergency write: one character through the config space. */
    mmio_write(&c.r, c.r.device + 8, '!', 4);
    n = client_read(c.client, buf, 1, 1000);
    g_assert_cmpmem(buf, n, "!", 1);
    console_teardown(&c);
}

/*
 * A client that stops reading: the device keeps the chain it could not
 * finish (nothing blocks), and completes it, in order, once the client reads.
 */
static void test_console_backpressure(void)
{
    Console c;
    console_setup(&c);
    enum { CHUNK = 256 * 1024, CHAINS = 6 };
    for (unsigned i = 0; i < CHAINS; i++) {
        uint8_t *data = g_malloc(CHUNK);
        for (unsigned j = 0; j < CHUNK; j++) {
            data[j] = (uint8_t)(i * 31 + j / 4096);
        }
        post(&c.r, TX, data, CHUNK);
        g_free(data);
    }
    kick(&c.r, TX);
    spin(50);
    g_assert_cmpuint(used_idx(&c.r, TX), <, CHAINS); /* the socket took only part of it */

    g_autofree uint8_t *got = g_malloc(CHUNK * CHAINS);
    size_t n = client_read(c.client, got, CHUNK * CHAINS, 2000);
    g_assert_cmpuint(n, ==, CHUNK * CHAINS);
    for (unsigned i = 0; i < CHAINS; i++) {
        for (unsigned j = 0; j < CHUNK; j += 4096) {
            g_assert_cmpuint(got[i * CHUNK + j], ==, (uint8_t)(i * 31 + j / 4096));
        }
    }
    ITERATE_UNTIL(used_idx(&c.r, TX) == CHAINS);
    g_assert_cmpuint(used_idx(&c.r, TX), ==, CHAINS);

    /* Blocked again, then the driver resets: the held chain is dropped, nothing breaks. */
    for (unsigned i = 0; i < 4; i++) {
        post(&c.r, TX, got, CHUNK);
    }
    kick(&c.r, TX);
    spin(20);
    set_status(&c.r, 0);
    driver_init(&c.r, 2);
    client_read(c.client, got, CHUNK * CHAINS, 200);
    post(&c.r, TX, "again\n", 6);
    kick(&c.r, TX);
    uint8_t buf[8];
    n = client_read(c.client, buf, 6, 1000);
    g_assert_cmpmem(buf, n, "again\n", 6);
    console_teardown(&c);
}

/* Input fills the guest's buffers and waits, unread, while there are none. */
static void test_console_input(void)
{
    Console c;
    console_setup(&c);
    uint64_t a = post(&c.r, RX, NULL, 16);
    uint64_t b = post(&c.r, RX, NULL, 16);
    kick(&c.r, RX);
    static const char typed[] = "0123456789abcdefghijklmnopqrstuvwxyz!?"; /* 38 bytes */
    g_assert_cmpint(write(c.client, typed, 38), ==, 38);
    ITERATE_UNTIL(used_idx(&c.r, RX) == 2);
    g_assert_cmpuint(used_idx(&c.r, RX), ==, 2);
    g_assert_cmpuint(used_len(&c.r, RX, 0) + used_len(&c.r, RX, 1), ==, 32);
    g_assert_cmpmem(c.r.ram + a, used_len(&c.r, RX, 0), typed, used_len(&c.r, RX, 0));
    g_assert_cmpmem(c.r.ram + b, used_len(&c.r, RX, 1), typed + used_len(&c.r, RX, 0), used_len(&c.r, RX, 1));
    spin(20);
    g_assert_cmpuint(used_idx(&c.r, RX), ==, 2); /* the rest waits for a buffer */
    uint64_t d = post(&c.r, RX, NULL, 64);
    kick(&c.r, RX);
    ITERATE_UNTIL(used_idx(&c.r, RX) == 3);
    g_assert_cmpuint(used_len(&c.r, RX, 2), ==, 6);
    g_assert_cmpmem(c.r.ram + d, 6, typed + 32, 6);
    console_teardown(&c);
}

/* virtio-serial-pci without a virtconsole: output is taken and dropped. */
static void test_console_no_port(void)
{
    Rig r;
    const char *argv[] = { "-device", "virtio-serial-pci", NULL };
    rig_init(&r, argv);
    driver_init(&r, 2);
    post(&r, TX, "nowhere", 7);
    kick(&r, TX);
    ITERATE_UNTIL(used_idx(&r, TX) == 1);
    g_assert_cmpuint(used_idx(&r, TX), ==, 1);
    rig_fini(&r);
}

/* virtio-rng-pci fills each buffer it is given with bytes that are not all the same. */
static void test_rng(void)
{
    Rig r;
    const char *argv[] = { "-object", "rng-random,id=r0,filename=/dev/urandom", "-device", "virtio-rng-pci,rng=r0",
                           NULL };
    rig_init(&r, argv);
    driver_init(&r, 1);
    uint64_t bufs[3];
    for (unsigned i = 0; i < 3; i++) {
        bufs[i] = post(&r, 0, NULL, 64);
    }
    kick(&r, 0);
    ITERATE_UNTIL(used_idx(&r, 0) == 3);
    g_assert_cmpuint(used_idx(&r, 0), ==, 3);
    for (unsigned i = 0; i < 3; i++) {
        g_assert_cmpuint(used_len(&r, 0, i), ==, 64);
        unsigned same = 0;
        for (unsigned j = 1; j < 64; j++) {
            same += r.ram[bufs[i] + j] == r.ram[bufs[i]];
        }
        g_assert_cmpuint(same, <, 63);
    }
    rig_fini(&r);
}

/* max-bytes/period: no more than the quota in a period (a long one: the test never waits for it). */
static void test_rng_rate_limit(void)
{
    Rig r;
    const char *argv[] = { "-device", "virtio-rng-pci,max-bytes=100,period=600000", NULL };
    rig_init(&r, argv);
    driver_init(&r, 1);
    for (unsigned i = 0; i < 3; i++) {
        post(&r, 0, NULL, 64);
    }
    kick(&r, 0);
    ITERATE_UNTIL(used_idx(&r, 0) == 2);
    spin(50);
    g_assert_cmpuint(used_idx(&r, 0), ==, 2);
    g_assert_cmpuint(used_len(&r, 0, 0), ==, 64);
    g_assert_cmpuint(used_len(&r, 0, 1), ==, 36);
    rig_fini(&r);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/virtio-console/output", test_console_output);
    g_test_add_func("/virtio-console/backpressure", test_console_backpressure);
    g_test_add_func("/virtio-console/input", test_console_input);
    g_test_add_func("/virtio-console/no-port", test_console_no_port);
    g_test_add_func("/virtio-rng/fill", test_rng);
    g_test_add_func("/virtio-rng/rate-limit", test_rng_rate_limit);
    return g_test_run();
}
