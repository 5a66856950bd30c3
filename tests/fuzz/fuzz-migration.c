/*
 * libFuzzer target for the migration loader: the bytes are an incoming
 * stream. The reader checks the header and each section's CRC; device
 * sections go through the vmstate loader (a description with scalars,
 * arrays, a nested struct and a subsection), RAM sections into a small RAM
 * block. Whatever the input, loading ends with success or one error and
 * never reads or writes out of bounds. To reach past the CRC checks, the
 * target also re-seals every section of the input (recomputing the CRCs)
 * and loads that too.
 */
#include "migration/ram.h"
#include "migration/stream.h"
#include "migration/vmstate.h"
#include "util/crc32c.h"
#include <stdlib.h>
#include <string.h>

#define FINGERPRINT "{\"machine\":\"pc\",\"m\":64}"
#define RAM_PAGES 32

typedef struct {
    uint16_t lo;
    uint64_t hi;
} Pair;

typedef struct {
    uint8_t a;
    uint32_t regs[4];
    bool flag;
    uint8_t blob[7];
    Pair pairs[2];
    uint32_t v2;
    uint64_t extra;
} Dev;

static const VMStateField pair_fields[] = {
    VMSTATE_UINT16(Pair, lo), VMSTATE_UINT64(Pair, hi), VMSTATE_END,
};
static const VMStateDescription pair_vmsd = { .name = "pair", .version = 1, .fields = pair_fields };
static const VMStateField extra_fields[] = { VMSTATE_UINT64(Dev, extra), VMSTATE_END };
static const VMStateDescription extra_vmsd = { .name = "dev/extra", .version = 1, .fields = extra_fields };
static const VMStateDescription *const subs[] = { &extra_vmsd, NULL };
static const VMStateField dev_fields[] = {
    VMSTATE_UINT8(Dev, a),
    VMSTATE_UINT32_ARRAY(Dev, regs),
    VMSTATE_BOOL(Dev, flag),
    VMSTATE_BUFFER(Dev, blob),
    VMSTATE_STRUCT_ARRAY(Dev, pairs, pair_vmsd, Pair),
    VMSTATE_UINT32_V(Dev, v2, 2),
    VMSTATE_END,
};
static const VMStateDescription dev_vmsd = {
    .name = "dev", .version = 2, .minimum_version = 1, .fields = dev_fields, .subsections = subs,
};

static void load(GBytes *data)
{
    static uint8_t ram[RAM_PAGES * RAM_PAGE_SIZE];
    RamBlock block = { "pc.ram", ram, sizeof(ram) };
    g_autoptr(GPtrArray) blocks = g_ptr_array_new();
    g_ptr_array_add(blocks, &block);
    Dev dev;
    g_autoptr(MigReader) r = mig_reader_new_bytes(data);
    g_autoptr(GError) err = NULL;
    if (!mig_read_header(r, FINGERPRINT, &err)) {
        return;
    }
    for (;;) {
        MigSection s;
        if (!mig_read_section_header(r, &s, &err)) {
            return;
        }
        bool ok = true;
        if (s.kind == MIG_SECTION_RAM) {
            ok = ram_load_section(r, &s, blocks, NULL, &err);
        } else if (s.kind == MIG_SECTION_DEVICE && (ok = mig_read_section_payload(r, &s, &err))) {
            gsize len;
            const uint8_t *p = g_bytes_get_data(s.payload, &len);
            ok = vmstate_load(&dev_vmsd, &dev, s.version, p, len, &err);
        }
        bool end = s.kind == MIG_SECTION_END;
        mig_section_clear(&s);
        if (!ok || end) {
            return;
        }
    }
}

/*
 * Rebuild the input as a well-formed stream: the fingerprint header, then
 * the input cut into sections (kind from one byte, a length from two), each
 * with a correct CRC, so mutations reach the section loaders.
 */
static GBytes *reseal(const uint8_t *data, size_t size)
{
    g_autoptr(MigWriter) w = mig_writer_new(-1);
    mig_write_header(w, FINGERPRINT);
    while (size >= 3) {
        uint8_t kind = data[0] & 1 ? MIG_SECTION_RAM : MIG_SECTION_DEVICE;
        size_t len = MIN((size_t)(data[1] | data[2] << 8), size - 3);
        uint32_t version = data[0] >> 1 & 3;
        mig_write_section(w, kind, kind == MIG_SECTION_RAM ? "pc.ram" : "dev", 0, version, data + 3, len);
        data += 3 + len;
        size -= 3 + len;
    }
    mig_write_end(w);
    return mig_writer_data(w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    g_autoptr(GBytes) raw = g_bytes_new_static(data, size);
    load(raw);
    g_autoptr(GBytes) sealed = reseal(data, size);
    load(sealed);
    return 0;
}
