#define G_LOG_DOMAIN "acpi"
#include "hw/acpi/acpi-table.h"
#include <string.h>

#define ACPI_TABLE_ALIGN 8

uint8_t acpi_checksum(const void *data, size_t len)
{
    const uint8_t *p = data;
    uint8_t sum = 0;
    for (size_t i = 0; i < len; i++) {
        sum += p[i];
    }
    return (uint8_t)-sum;
}

void acpi_put_le(GByteArray *b, uint64_t v, unsigned n)
{
    g_assert(n <= 8);
    for (unsigned i = 0; i < n; i++) {
        uint8_t byte = v >> (8 * i);
        g_byte_array_append(b, &byte, 1);
    }
}

void acpi_blob_init(AcpiBlob *blob, uint64_t base_gpa)
{
    /* The legacy RSDP scan only looks at 16-byte boundaries. */
    g_assert((base_gpa & 15) == 0);
    blob->data = g_byte_array_new();
    blob->base_gpa = base_gpa;
    blob->root = g_array_new(FALSE, FALSE, sizeof(guint));
    g_byte_array_set_size(blob->data, sizeof(AcpiRsdp));
    memset(blob->data->data, 0, sizeof(AcpiRsdp));
}

uint64_t acpi_blob_gpa(const AcpiBlob *blob, gsize offset)
{
    return blob->base_gpa + offset;
}

void acpi_blob_align(AcpiBlob *blob, unsigned align)
{
    g_assert(align && (align & (align - 1)) == 0);
    while (acpi_blob_gpa(blob, blob->data->len) & (align - 1)) {
        acpi_put_le(blob->data, 0, 1);
    }
}

gsize acpi_table_begin(AcpiBlob *blob, const char *sig, uint8_t rev)
{
    g_assert(strlen(sig) == 4);
    acpi_blob_align(blob, ACPI_TABLE_ALIGN);
    AcpiTableHeader h = {
        .revision = rev,
        .oem_revision = GUINT32_TO_LE(1),
        .creator_revision = GUINT32_TO_LE(1),
    };
    memcpy(h.signature, sig, 4);
    memcpy(h.oem_id, ACPI_OEM_ID, sizeof(h.oem_id));
    memcpy(h.oem_table_id, ACPI_OEM_TABLE_ID, sizeof(h.oem_table_id));
    memcpy(h.creator_id, ACPI_CREATOR_ID, sizeof(h.creator_id));
    gsize start = blob->data->len;
    g_byte_array_append(blob->data, (const guint8 *)&h, sizeof(h));
    return start;
}

void acpi_table_end(AcpiBlob *blob, gsize start, bool listed)
{
    g_assert(start + sizeof(AcpiTableHeader) <= blob->data->len);
    AcpiTableHeader *h = (AcpiTableHeader *)(blob->data->data + start);
    uint32_t len = blob->data->len - start;
    h->length = GUINT32_TO_LE(len);
    h->checksum = 0;
    h->checksum = acpi_checksum(h, len);
    if (listed) {
        guint off = start;
        g_array_append_val(blob->root, off);
    }
}

static bool root_fits_32bit(const AcpiBlob *blob)
{
    for (guint i = 0; i < blob->root->len; i++) {
        if (acpi_blob_gpa(blob, g_array_index(blob->root, guint, i)) > UINT32_MAX) {
            return false;
        }
    }
    return true;
}

/* The XSDT and RSDT differ only in signature and pointer width. */
static gsize build_root_table(AcpiBlob *blob, const char *sig, unsigned ptr_size)
{
    gsize start = acpi_table_begin(blob, sig, 1);
    for (guint i = 0; i < blob->root->len; i++) {
        acpi_put_le(blob->data, acpi_blob_gpa(blob, g_array_index(blob->root, guint, i)), ptr_size);
    }
    acpi_table_end(blob, start, false);
    return start;
}

GByteArray *acpi_blob_finish(AcpiBlob *blob, uint64_t *rsdp_gpa)
{
    gsize xsdt = build_root_table(blob, "XSDT", 8);
    uint64_t rsdt_gpa = 0;
    if (root_fits_32bit(blob)) {
        rsdt_gpa = acpi_blob_gpa(blob, build_root_table(blob, "RSDT", 4));
        if (rsdt_gpa > UINT32_MAX) {
            rsdt_gpa = 0;
        }
    }

    AcpiRsdp rsdp = {
        .revision = 2,
        .rsdt_address = GUINT32_TO_LE((uint32_t)rsdt_gpa),
        .length = GUINT32_TO_LE(sizeof(AcpiRsdp)),
        .xsdt_address = GUINT64_TO_LE(acpi_blob_gpa(blob, xsdt)),
    };
    memcpy(rsdp.signature, "RSD PTR ", sizeof(rsdp.signature));
    memcpy(rsdp.oem_id, ACPI_OEM_ID, sizeof(rsdp.oem_id));
    rsdp.checksum = acpi_checksum(&rsdp, 20);
    rsdp.extended_checksum = acpi_checksum(&rsdp, sizeof(rsdp));
    memcpy(blob->data->data, &rsdp, sizeof(rsdp));

    g_array_free(blob->root, TRUE);
    blob->root = NULL;
    *rsdp_gpa = acpi_blob_gpa(blob, 0);
    return g_steal_pointer(&blob->data);
}
