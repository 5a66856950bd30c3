/*
 * Device state as data: each device describes its migratable fields once,
 * in a table, and generic code saves and loads them. A description has a
 * version; a field added later names the version it appeared in, so a newer
 * Vireo still loads an older stream. Optional state goes in subsections,
 * sent only when their `needed` test says so and recognised by name.
 *
 * Wire form of one description (all little-endian): its fields in table
 * order, each element at its natural width (bool as one byte 0/1), nested
 * structs inline; then for each subsection sent, the byte 1, a one-byte
 * name length, the name, a u32 version, a u32 byte length and the
 * subsection's own wire form; then the byte 0.
 */
#pragma once
#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct VMStateDescription VMStateDescription;

typedef enum {
    VMS_U8,
    VMS_U16,
    VMS_U32,
    VMS_U64,
    VMS_BOOL,
    VMS_BUFFER, /* @size raw bytes */
    VMS_STRUCT, /* @count elements of @size bytes, each described by @vmsd */
} VMStateType;

typedef struct VMStateField {
    const char *name; /* NULL ends a table */
    size_t offset;
    VMStateType type;
    size_t size;      /* of one element */
    unsigned count;   /* elements; 1 for a single value */
    const VMStateDescription *vmsd;
    int since_version; /* first version of the description with this field (0: always) */
} VMStateField;

struct VMStateDescription {
    const char *name;
    int version, minimum_version; /* what this build writes, and the oldest it loads */
    const VMStateField *fields;
    const VMStateDescription *const *subsections; /* NULL-terminated, or NULL */
    bool (*needed)(void *opaque);                 /* subsections only */
    /* Gather state into the fields (e.g. from KVM); false stops the save. */
    bool (*pre_save)(void *opaque, GError **err);
    /* Check and apply what was loaded; false (with @err naming the problem) refuses the stream. */
    bool (*post_load)(void *opaque, int version, GError **err);
    /*
     * Registered descriptions only. Called with the vCPUs stopped before a
     * migration's last RAM pass: finish whatever would still write guest
     * memory behind the vCPUs' backs (disk requests in flight, kicks not yet
     * taken), so the RAM sent after it is final.
     */
    void (*quiesce)(void *opaque);
};

/* Compile-time check, usable inside an initializer. */
#define VMS_ASSERT_ZERO(cond) (0 * sizeof(struct { int vms_check : (cond) ? 1 : -1; }))
#define VMS_FIELD_SIZE(T, f) sizeof(((T *)0)->f)

#define VMSTATE_SCALAR(T, f, t, n, v)                                                       \
    { .name = #f, .offset = offsetof(T, f) + VMS_ASSERT_ZERO(VMS_FIELD_SIZE(T, f) == (n)), \
      .type = (t), .size = (n), .count = 1, .since_version = (v) }
#define VMSTATE_UINT8(T, f) VMSTATE_SCALAR(T, f, VMS_U8, 1, 0)
#define VMSTATE_UINT16(T, f) VMSTATE_SCALAR(T, f, VMS_U16, 2, 0)
#define VMSTATE_UINT32(T, f) VMSTATE_SCALAR(T, f, VMS_U32, 4, 0)
#define VMSTATE_UINT64(T, f) VMSTATE_SCALAR(T, f, VMS_U64, 8, 0)
#define VMSTATE_BOOL(T, f) VMSTATE_SCALAR(T, f, VMS_BOOL, sizeof(bool), 0)
#define VMSTATE_UINT32_V(T, f, v) VMSTATE_SCALAR(T, f, VMS_U32, 4, v)
#define VMSTATE_UINT64_V(T, f, v) VMSTATE_SCALAR(T, f, VMS_U64, 8, v)
/* A fixed array of scalars, e.g. uint32_t regs[8]. */
#define VMSTATE_ARRAY(T, f, t, esize)                                                       \
    { .name = #f, .offset = offsetof(T, f) + VMS_ASSERT_ZERO(sizeof(((T *)0)->f[0]) == (esize)), \
      .type = (t), .size = (esize), .count = G_N_ELEMENTS(((T *)0)->f) }
#define VMSTATE_UINT8_ARRAY(T, f) VMSTATE_ARRAY(T, f, VMS_U8, 1)
#define VMSTATE_UINT16_ARRAY(T, f) VMSTATE_ARRAY(T, f, VMS_U16, 2)
#define VMSTATE_UINT32_ARRAY(T, f) VMSTATE_ARRAY(T, f, VMS_U32, 4)
#define VMSTATE_UINT64_ARRAY(T, f) VMSTATE_ARRAY(T, f, VMS_U64, 8)
/* Opaque bytes (a register file KVM defines, e.g. struct kvm_lapic_state). */
#define VMSTATE_BUFFER(T, f) \
    { .name = #f, .offset = offsetof(T, f), .type = VMS_BUFFER, .size = VMS_FIELD_SIZE(T, f), .count = 1 }
#define VMSTATE_STRUCT(T, f, desc, ET)                                                       \
    { .name = #f, .offset = offsetof(T, f) + VMS_ASSERT_ZERO(VMS_FIELD_SIZE(T, f) == sizeof(ET)), \
      .type = VMS_STRUCT, .size = sizeof(ET), .count = 1, .vmsd = &(desc) }
#define VMSTATE_STRUCT_ARRAY(T, f, desc, ET)                                                    \
    { .name = #f, .offset = offsetof(T, f) + VMS_ASSERT_ZERO(sizeof(((T *)0)->f[0]) == sizeof(ET)), \
      .type = VMS_STRUCT, .size = sizeof(ET), .count = G_N_ELEMENTS(((T *)0)->f), .vmsd = &(desc) }
#define VMSTATE_END { .name = NULL }

typedef struct Machine Machine;

/* A description registered on a machine: one DEVICE section of its stream. */
typedef struct VMStateEntry {
    char *id;          /* e.g. "serial", "00:02.0/virtio-blk" */
    uint32_t instance; /* tells several of one id apart (vCPU index) */
    const VMStateDescription *vmsd;
    void *opaque;
} VMStateEntry;

/*
 * Make @opaque's state (described by @vmsd) part of @m's migration stream,
 * as section @id / @instance. Sections are saved in registration order and
 * loaded by id and instance, so register in an order where each post_load
 * finds what it depends on already loaded. A device registers when it is
 * created and unregisters when it goes.
 */
void vmstate_register(Machine *m, const char *id, uint32_t instance, const VMStateDescription *vmsd, void *opaque);
void vmstate_unregister(Machine *m, void *opaque);
/* The registered entry for @id / @instance, or NULL. */
const VMStateEntry *vmstate_find(Machine *m, const char *id, uint32_t instance);

/* Append the state of @opaque to @out; false if a pre_save hook refused. */
bool vmstate_save(const VMStateDescription *vmsd, void *opaque, GByteArray *out, GError **err);
/*
 * Load @len bytes written by vmstate_save for version @version of @vmsd into
 * @opaque. Every length is checked: short, long or malformed input fails
 * with @err naming the description and the field, never reads out of bounds.
 */
bool vmstate_load(const VMStateDescription *vmsd, void *opaque, int version, const uint8_t *buf, size_t len,
                  GError **err);
