/*
 * What a machine contributes to a migration stream: the device state its
 * devices registered and its RAM blocks, and the pages devices write while
 * a migration tracks them.
 */
#include "hw/core/machine.h"
#include "migration/ram.h"
#include "migration/vmstate.h"
#include <string.h>

static void vmstate_entry_free(gpointer p)
{
    VMStateEntry *e = p;
    g_free(e->id);
    g_free(e);
}

static void ram_block_free(gpointer p)
{
    RamBlock *b = p;
    g_free((char *)b->name);
    g_free(b->written);
    g_free(b);
}

void vmstate_register(Machine *m, const char *id, uint32_t instance, const VMStateDescription *vmsd, void *opaque)
{
    g_assert(!vmstate_find(m, id, instance));
    if (!m->vmstate_entries) {
        m->vmstate_entries = g_ptr_array_new_with_free_func(vmstate_entry_free);
    }
    VMStateEntry *e = g_new(VMStateEntry, 1);
    *e = (VMStateEntry){ g_strdup(id), instance, vmsd, opaque };
    g_ptr_array_add(m->vmstate_entries, e);
}

void vmstate_unregister(Machine *m, void *opaque)
{
    for (guint i = 0; m->vmstate_entries && i < m->vmstate_entries->len;) {
        VMStateEntry *e = g_ptr_array_index(m->vmstate_entries, i);
        if (e->opaque == opaque) {
            g_ptr_array_remove_index(m->vmstate_entries, i);
        } else {
            i++;
        }
    }
}

const VMStateEntry *vmstate_find(Machine *m, const char *id, uint32_t instance)
{
    for (guint i = 0; m->vmstate_entries && i < m->vmstate_entries->len; i++) {
        const VMStateEntry *e = g_ptr_array_index(m->vmstate_entries, i);
        if (e->instance == instance && strcmp(e->id, id) == 0) {
            return e;
        }
    }
    return NULL;
}

void ram_block_register(Machine *m, const char *name, uint8_t *host, uint64_t size)
{
    g_assert(size % RAM_PAGE_SIZE == 0);
    if (!m->ram_blocks) {
        m->ram_blocks = g_ptr_array_new_with_free_func(ram_block_free);
    }
    RamBlock *b = g_new0(RamBlock, 1);
    b->name = g_strdup(name);
    b->host = host;
    b->size = size;
    /* Allocated once for the machine's life, so a device thread never sees it go. */
    b->written = g_new0(uint64_t, ram_block_words(b));
    g_ptr_array_add(m->ram_blocks, b);
}

RamBlock *ram_block_containing(GPtrArray *blocks, const void *hva, guint *index)
{
    const uint8_t *p = hva;
    for (guint i = 0; blocks && i < blocks->len; i++) {
        RamBlock *b = g_ptr_array_index(blocks, i);
        if (p >= b->host && p < b->host + b->size) {
            if (index) {
                *index = i;
            }
            return b;
        }
    }
    return NULL;
}

void ram_mark_dirty(Machine *m, const void *hva, size_t len)
{
    if (!len || !g_atomic_int_get(&m->dirty_tracking)) {
        return;
    }
    RamBlock *b = ram_block_containing(m->ram_blocks, hva, NULL);
    if (!b) {
        return;
    }
    uint64_t offset = (uint64_t)((const uint8_t *)hva - b->host);
    uint64_t last = (MIN(offset + len, b->size) - 1) / RAM_PAGE_SIZE;
    for (uint64_t pg = offset / RAM_PAGE_SIZE; pg <= last; pg++) {
        __atomic_fetch_or(&b->written[pg / 64], 1ULL << (pg % 64), __ATOMIC_RELAXED);
    }
}
