#define G_LOG_DOMAIN "i8042"
#include "hw/input/i8042.h"
#include "migration/vmstate.h"
#include "util/error.h"
#include <string.h>

#define STAT_OBF 0x01
#define STAT_SYS 0x04      /* mirrors the command byte's system flag */
#define STAT_CMD 0x08      /* last write went to 0x64 */
#define STAT_UNLOCKED 0x10 /* keyboard not inhibited by the key lock */
#define STAT_AUX_OBF 0x20
#define STAT_TIMEOUT 0x40

#define CTR_KBD_INT 0x01
#define CTR_AUX_INT 0x02
#define CTR_SYS 0x04
#define CTR_KBD_DISABLE 0x10
#define CTR_AUX_DISABLE 0x20
#define CTR_XLATE 0x40

#define OUTPORT_RESET 0x01 /* active low: 0 holds the CPU in reset */
#define OUTPORT_A20 0x02

/* Controller commands (port 0x64). */
enum {
    CMD_READ_RAM = 0x20,  /* 0x20..0x3f: byte 0 is the command byte */
    CMD_WRITE_RAM = 0x60, /* 0x60..0x7f */
    CMD_AUX_DISABLE = 0xa7,
    CMD_AUX_ENABLE = 0xa8,
    CMD_AUX_TEST = 0xa9,
    CMD_SELF_TEST = 0xaa,
    CMD_KBD_TEST = 0xab,
    CMD_KBD_DISABLE = 0xad,
    CMD_KBD_ENABLE = 0xae,
    CMD_READ_OUTPORT = 0xd0,
    CMD_WRITE_OUTPORT = 0xd1,
    CMD_WRITE_KBD_OBUF = 0xd2,
    CMD_WRITE_AUX_OBUF = 0xd3,
    CMD_WRITE_AUX = 0xd4,
    CMD_PULSE = 0xf0, /* 0xf0..0xff: low bits clear pulse those output lines */
};

#define SELF_TEST_OK 0x55
#define INTERFACE_OK 0x00
#define NO_DEVICE 0xfe
#define RAM_SIZE 32
#define QUEUE_SIZE 8

/* A byte waiting in the output buffer, and where it claims to come from. */
typedef struct {
    uint8_t data;
    bool aux;
    bool timeout;
} OutByte;

struct I8042 {
    Machine *m;
    IrqLine kbd_irq, aux_irq;
    uint8_t ram[RAM_SIZE]; /* ram[0] is the command byte */
    uint8_t outport;
    uint8_t pending;       /* command waiting for its data byte on 0x60, 0 if none */
    bool last_was_cmd;
    /*
     * The real output buffer holds one byte; a short queue lets a reply
     * wait behind one the guest has not read yet instead of replacing it.
     */
    OutByte queue[QUEUE_SIZE];
    unsigned head, count;
    uint8_t last_read;
    bool kbd_level, aux_level;
};

static void update_irq(I8042 *kbc)
{
    const OutByte *b = kbc->count ? &kbc->queue[kbc->head] : NULL;
    bool kbd = b && !b->aux && (kbc->ram[0] & CTR_KBD_INT);
    bool aux = b && b->aux && (kbc->ram[0] & CTR_AUX_INT);

    if (kbd != kbc->kbd_level) {
        kbc->kbd_level = kbd;
        irq_set(&kbc->kbd_irq, kbd);
    }
    if (aux != kbc->aux_level) {
        kbc->aux_level = aux;
        irq_set(&kbc->aux_irq, aux);
    }
}

static void queue_byte(I8042 *kbc, uint8_t data, bool aux, bool timeout)
{
    if (kbc->count == QUEUE_SIZE) {
        g_debug("output buffer overflow, dropping 0x%02x", data);
        return;
    }
    kbc->queue[(kbc->head + kbc->count) % QUEUE_SIZE] = (OutByte){ data, aux, timeout };
    kbc->count++;
    update_irq(kbc);
}

static void reply(I8042 *kbc, uint8_t data)
{
    queue_byte(kbc, data, false, false);
}

static void request_reset(I8042 *kbc)
{
    g_debug("guest reset through the keyboard controller");
    kbc->m->request_reset(kbc->m, SHUTDOWN_CAUSE_GUEST_RESET);
}

static void write_outport(I8042 *kbc, uint8_t v)
{
    kbc->outport = v;
    if (!(v & OUTPORT_RESET)) {
        request_reset(kbc);
    }
}

static void set_ctr(I8042 *kbc, uint8_t v)
{
    kbc->ram[0] = v;
    update_irq(kbc);
}

static void controller_command(I8042 *kbc, uint8_t cmd)
{
    uint8_t ctr = kbc->ram[0];

    if (cmd >= CMD_READ_RAM && cmd < CMD_READ_RAM + RAM_SIZE) {
        reply(kbc, kbc->ram[cmd - CMD_READ_RAM]);
        return;
    }
    if (cmd >= CMD_PULSE) {
        if (!(cmd & OUTPORT_RESET)) {
            request_reset(kbc);
        }
        return;
    }
    switch (cmd) {
    case CMD_AUX_DISABLE:
        set_ctr(kbc, ctr | CTR_AUX_DISABLE);
        break;
    case CMD_AUX_ENABLE:
        set_ctr(kbc, ctr & ~CTR_AUX_DISABLE);
        break;
    case CMD_AUX_TEST:
    case CMD_KBD_TEST:
        reply(kbc, INTERFACE_OK);
        break;
    case CMD_SELF_TEST:
        set_ctr(kbc, ctr | CTR_SYS);
        reply(kbc, SELF_TEST_OK);
        break;
    case CMD_KBD_DISABLE:
        set_ctr(kbc, ctr | CTR_KBD_DISABLE);
        break;
    case CMD_KBD_ENABLE:
        set_ctr(kbc, ctr & ~CTR_KBD_DISABLE);
        break;
    case CMD_READ_OUTPORT:
        reply(kbc, kbc->outport);
        break;
    case CMD_WRITE_OUTPORT:
    case CMD_WRITE_KBD_OBUF:
    case CMD_WRITE_AUX_OBUF:
    case CMD_WRITE_AUX:
        kbc->pending = cmd;
        break;
    default:
        if (cmd >= CMD_WRITE_RAM && cmd < CMD_WRITE_RAM + RAM_SIZE) {
            kbc->pending = cmd;
        } else {
            g_debug("unhandled controller command 0x%02x", cmd);
        }
        break;
    }
}

/* A data byte: the argument of a pending command, or a byte for the (absent) keyboard. */
static void data_write(I8042 *kbc, uint8_t v)
{
    uint8_t cmd = kbc->pending;

    kbc->pending = 0;
    if (cmd >= CMD_WRITE_RAM && cmd < CMD_WRITE_RAM + RAM_SIZE) {
        kbc->ram[cmd - CMD_WRITE_RAM] = v;
        update_irq(kbc);
        return;
    }
    switch (cmd) {
    case CMD_WRITE_OUTPORT:
        write_outport(kbc, v);
        break;
    case CMD_WRITE_KBD_OBUF:
        queue_byte(kbc, v, false, false);
        break;
    case CMD_WRITE_AUX_OBUF:
        queue_byte(kbc, v, true, false);
        break;
    case CMD_WRITE_AUX:
        queue_byte(kbc, NO_DEVICE, true, true);
        break;
    default:
        queue_byte(kbc, NO_DEVICE, false, true);
        break;
    }
}

static uint64_t i8042_data_read(void *opaque, uint64_t offset, unsigned size)
{
    I8042 *kbc = opaque;

    if (kbc->count) {
        kbc->last_read = kbc->queue[kbc->head].data;
        kbc->head = (kbc->head + 1) % QUEUE_SIZE;
        kbc->count--;
        update_irq(kbc);
    }
    return kbc->last_read; /* an empty buffer reads as the last byte, as on hardware */
}

static void i8042_data_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    I8042 *kbc = opaque;
    kbc->last_was_cmd = false;
    data_write(kbc, value);
}

static uint64_t i8042_status_read(void *opaque, uint64_t offset, unsigned size)
{
    I8042 *kbc = opaque;
    uint8_t st = STAT_UNLOCKED;

    if (kbc->count) {
        const OutByte *b = &kbc->queue[kbc->head];
        st |= STAT_OBF | (b->aux ? STAT_AUX_OBF : 0) | (b->timeout ? STAT_TIMEOUT : 0);
    }
    st |= kbc->ram[0] & CTR_SYS ? STAT_SYS : 0;
    st |= kbc->last_was_cmd ? STAT_CMD : 0;
    return st;
}

static void i8042_cmd_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    I8042 *kbc = opaque;
    kbc->last_was_cmd = true;
    kbc->pending = 0; /* a new command abandons one still waiting for data */
    controller_command(kbc, value);
}

static const IoRegionOps data_ops = {
    .read = i8042_data_read,
    .write = i8042_data_write,
    .min_size = 1,
    .max_size = 1,
};

static const IoRegionOps cmd_ops = {
    .read = i8042_status_read,
    .write = i8042_cmd_write,
    .min_size = 1,
    .max_size = 1,
};

/* ---- migration ---- */

void i8042_reset(I8042 *kbc);

static bool i8042_post_load(void *opaque, int version, GError **err)
{
    I8042 *kbc = opaque;
    if (kbc->head >= QUEUE_SIZE || kbc->count > QUEUE_SIZE) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID,
                    "device state 'i8042', field %s: output queue %u+%u out of range",
                    kbc->head >= QUEUE_SIZE ? "head" : "count", kbc->head, kbc->count);
        i8042_reset(kbc); /* nothing half-loaded stays */
        return false;
    }
    /* The destination's lines start low: raise what the queue and command byte say. */
    kbc->kbd_level = kbc->aux_level = false;
    irq_set(&kbc->kbd_irq, false);
    irq_set(&kbc->aux_irq, false);
    update_irq(kbc);
    return true;
}

static const VMStateField out_byte_fields[] = {
    VMSTATE_UINT8(OutByte, data),
    VMSTATE_BOOL(OutByte, aux),
    VMSTATE_BOOL(OutByte, timeout),
    VMSTATE_END,
};

static const VMStateDescription out_byte_vmsd = {
    .name = "i8042/out-byte",
    .version = 1,
    .minimum_version = 1,
    .fields = out_byte_fields,
};

static const VMStateField i8042_fields[] = {
    VMSTATE_UINT8_ARRAY(I8042, ram),
    VMSTATE_UINT8(I8042, outport),
    VMSTATE_UINT8(I8042, pending),
    VMSTATE_BOOL(I8042, last_was_cmd),
    VMSTATE_STRUCT_ARRAY(I8042, queue, out_byte_vmsd, OutByte),
    VMSTATE_UINT32(I8042, head),
    VMSTATE_UINT32(I8042, count),
    VMSTATE_UINT8(I8042, last_read),
    VMSTATE_END,
};

static const VMStateDescription i8042_vmsd = {
    .name = "i8042",
    .version = 1,
    .minimum_version = 1,
    .fields = i8042_fields,
    .post_load = i8042_post_load,
};

void i8042_reset(I8042 *kbc)
{
    memset(kbc->ram, 0, sizeof(kbc->ram));
    /* As firmware leaves it: keyboard interrupt on, POST passed, scancode translation. */
    kbc->ram[0] = CTR_KBD_INT | CTR_SYS | CTR_XLATE;
    kbc->outport = OUTPORT_RESET | OUTPORT_A20;
    kbc->pending = 0;
    kbc->last_was_cmd = false;
    kbc->head = kbc->count = 0;
    kbc->last_read = 0;
    kbc->kbd_level = kbc->aux_level = false;
    irq_set(&kbc->kbd_irq, false);
    irq_set(&kbc->aux_irq, false);
}

I8042 *i8042_new(Machine *m, IrqLine kbd_irq, IrqLine aux_irq, GError **err)
{
    I8042 *kbc = g_new0(I8042, 1);

    kbc->m = m;
    kbc->kbd_irq = kbd_irq;
    kbc->aux_irq = aux_irq;
    if (!io_map_add(m->pio, I8042_DATA_PORT, 1, &data_ops, kbc, "i8042-data", err)) {
        g_free(kbc);
        return NULL;
    }
    if (!io_map_add(m->pio, I8042_CMD_PORT, 1, &cmd_ops, kbc, "i8042-cmd", err)) {
        io_map_remove(m->pio, I8042_DATA_PORT);
        g_free(kbc);
        return NULL;
    }
    i8042_reset(kbc);
    vmstate_register(m, "i8042", 0, &i8042_vmsd, kbc);
    return kbc;
}

void i8042_free(I8042 *kbc)
{
    if (!kbc) {
        return;
    }
    vmstate_unregister(kbc->m, kbc);
    io_map_remove(kbc->m->pio, I8042_DATA_PORT);
    io_map_remove(kbc->m->pio, I8042_CMD_PORT);
    g_free(kbc);
}
