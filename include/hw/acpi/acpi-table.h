/*
 * Generic ACPI table plumbing shared by every machine: the fixed layouts the
 * spec defines (ACPI 6.x, chapter 5.2), checksums, and a blob that lays out a
 * set of tables for one guest address and ends with the RSDP/XSDT/RSDT that
 * point at them.
 *
 * All multi-byte fields are little-endian in guest memory; the structs hold
 * them already converted (GUINT32_TO_LE and friends).
 */
#pragma once
#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#define ACPI_PACKED __attribute__((packed))

#define ACPI_OEM_ID "VIREO "         /* 6 bytes */
#define ACPI_OEM_TABLE_ID "VIREOVM " /* 8 bytes */
#define ACPI_CREATOR_ID "VIRO"       /* 4 bytes */

typedef struct ACPI_PACKED AcpiTableHeader {
    char signature[4];
    uint32_t length;
    uint8_t revision;
    uint8_t checksum;
    char oem_id[6];
    char oem_table_id[8];
    uint32_t oem_revision;
    char creator_id[4];
    uint32_t creator_revision;
} AcpiTableHeader;
G_STATIC_ASSERT(sizeof(AcpiTableHeader) == 36);

/* Generic Address Structure (5.2.3.2). */
typedef struct ACPI_PACKED AcpiGas {
    uint8_t space_id;
    uint8_t bit_width;
    uint8_t bit_offset;
    uint8_t access_size;
    uint64_t address;
} AcpiGas;
G_STATIC_ASSERT(sizeof(AcpiGas) == 12);

enum { ACPI_GAS_SYSTEM_MEMORY = 0, ACPI_GAS_SYSTEM_IO = 1 };
enum { ACPI_GAS_ACCESS_BYTE = 1, ACPI_GAS_ACCESS_WORD = 2, ACPI_GAS_ACCESS_DWORD = 3 };

/* An I/O port block described with an explicit access width. */
static inline AcpiGas acpi_gas_io(uint16_t port, unsigned len_bytes, unsigned access_size)
{
    return (AcpiGas){
        .space_id = ACPI_GAS_SYSTEM_IO,
        .bit_width = len_bytes * 8,
        .access_size = access_size,
        .address = GUINT64_TO_LE(port),
    };
}

typedef struct ACPI_PACKED AcpiRsdp {
    char signature[8]; /* "RSD PTR " */
    uint8_t checksum;  /* over the first 20 bytes (the ACPI 1.0 part) */
    char oem_id[6];
    uint8_t revision;
    uint32_t rsdt_address;
    uint32_t length;
    uint64_t xsdt_address;
    uint8_t extended_checksum; /* over all 36 bytes */
    uint8_t reserved[3];
} AcpiRsdp;
G_STATIC_ASSERT(sizeof(AcpiRsdp) == 36);

/* Firmware ACPI Control Structure: no header, no checksum, 64-byte aligned. */
typedef struct ACPI_PACKED AcpiFacs {
    char signature[4];
    uint32_t length;
    uint32_t hardware_signature;
    uint32_t firmware_waking_vector;
    uint32_t global_lock;
    uint32_t flags;
    uint64_t x_firmware_waking_vector;
    uint8_t version;
    uint8_t reserved[3];
    uint32_t ospm_flags;
    uint8_t reserved2[24];
} AcpiFacs;
G_STATIC_ASSERT(sizeof(AcpiFacs) == 64);

/* Fixed ACPI Description Table, revision 6 (ACPI 6.0 and later). */
typedef struct ACPI_PACKED AcpiFadt {
    AcpiTableHeader header;
    uint32_t firmware_ctrl;
    uint32_t dsdt;
    uint8_t reserved0;
    uint8_t preferred_pm_profile;
    uint16_t sci_int;
    uint32_t smi_cmd;
    uint8_t acpi_enable, acpi_disable, s4bios_req, pstate_cnt;
    uint32_t pm1a_evt_blk, pm1b_evt_blk, pm1a_cnt_blk, pm1b_cnt_blk;
    uint32_t pm2_cnt_blk, pm_tmr_blk, gpe0_blk, gpe1_blk;
    uint8_t pm1_evt_len, pm1_cnt_len, pm2_cnt_len, pm_tmr_len;
    uint8_t gpe0_blk_len, gpe1_blk_len, gpe1_base, cst_cnt;
    uint16_t p_lvl2_lat, p_lvl3_lat;
    uint16_t flush_size, flush_stride;
    uint8_t duty_offset, duty_width, day_alrm, mon_alrm, century;
    uint16_t iapc_boot_arch;
    uint8_t reserved1;
    uint32_t flags;
    AcpiGas reset_reg;
    uint8_t reset_value;
    uint16_t arm_boot_arch;
    uint8_t minor_version;
    uint64_t x_firmware_ctrl;
    uint64_t x_dsdt;
    AcpiGas x_pm1a_evt_blk, x_pm1b_evt_blk, x_pm1a_cnt_blk, x_pm1b_cnt_blk;
    AcpiGas x_pm2_cnt_blk, x_pm_tmr_blk, x_gpe0_blk, x_gpe1_blk;
    AcpiGas sleep_control_reg, sleep_status_reg;
    uint64_t hypervisor_vendor_id;
} AcpiFadt;
G_STATIC_ASSERT(sizeof(AcpiFadt) == 276);

/* FADT Flags (5.2.9, table 5.10). */
enum {
    ACPI_FADT_WBINVD = 1u << 0,
    ACPI_FADT_PROC_C1 = 1u << 2,
    ACPI_FADT_PWR_BUTTON = 1u << 4, /* set: no fixed-feature power button */
    ACPI_FADT_SLP_BUTTON = 1u << 5, /* set: no fixed-feature sleep button */
    ACPI_FADT_FIX_RTC = 1u << 6,    /* set: no RTC_STS in the fixed registers */
    ACPI_FADT_TMR_VAL_EXT = 1u << 8,
    ACPI_FADT_RESET_REG_SUP = 1u << 10,
    ACPI_FADT_HW_REDUCED = 1u << 20,
};
/* IA-PC boot architecture flags. */
enum { ACPI_IAPC_LEGACY_DEVICES = 1u << 0, ACPI_IAPC_8042 = 1u << 1 };

/* Multiple APIC Description Table and the entries the x86 machines use. */
typedef struct ACPI_PACKED AcpiMadt {
    AcpiTableHeader header;
    uint32_t local_apic_address;
    uint32_t flags;
} AcpiMadt;
#define ACPI_MADT_PCAT_COMPAT 1u

enum {
    ACPI_MADT_LOCAL_APIC = 0,
    ACPI_MADT_IO_APIC = 1,
    ACPI_MADT_INT_OVERRIDE = 2,
    ACPI_MADT_LOCAL_APIC_NMI = 4,
};

typedef struct ACPI_PACKED AcpiMadtLocalApic {
    uint8_t type, length;
    uint8_t processor_uid;
    uint8_t apic_id;
    uint32_t flags; /* bit 0: enabled */
} AcpiMadtLocalApic;

typedef struct ACPI_PACKED AcpiMadtIoApic {
    uint8_t type, length;
    uint8_t id;
    uint8_t reserved;
    uint32_t address;
    uint32_t gsi_base;
} AcpiMadtIoApic;

typedef struct ACPI_PACKED AcpiMadtIntOverride {
    uint8_t type, length;
    uint8_t bus; /* 0: ISA */
    uint8_t source;
    uint32_t gsi;
    uint16_t flags; /* MPS INTI flags */
} AcpiMadtIntOverride;

typedef struct ACPI_PACKED AcpiMadtLocalApicNmi {
    uint8_t type, length;
    uint8_t processor_uid; /* 0xff: all processors */
    uint16_t flags;
    uint8_t lint;
} AcpiMadtLocalApicNmi;

/* MCFG (PCI Firmware Specification 3.x, 4.1.2): ECAM windows follow the header. */
typedef struct ACPI_PACKED AcpiMcfg {
    AcpiTableHeader header;
    uint8_t reserved[8];
} AcpiMcfg;

typedef struct ACPI_PACKED AcpiMcfgAllocation {
    uint64_t base_address; /* ECAM of bus 0 of the segment, even if start_bus > 0 */
    uint16_t segment;
    uint8_t start_bus, end_bus;
    uint32_t reserved;
} AcpiMcfgAllocation;
G_STATIC_ASSERT(sizeof(AcpiMcfgAllocation) == 16);

/* MPS INTI flags: polarity in bits 1:0, trigger mode in bits 3:2. */
enum {
    ACPI_INTI_CONFORMING = 0,
    ACPI_INTI_ACTIVE_HIGH = 1 << 0,
    ACPI_INTI_ACTIVE_LOW = 3 << 0,
    ACPI_INTI_EDGE = 1 << 2,
    ACPI_INTI_LEVEL = 3 << 2,
};

uint8_t acpi_checksum(const void *data, size_t len);

/* Append @n little-endian bytes of @v. */
void acpi_put_le(GByteArray *b, uint64_t v, unsigned n);

/*
 * Tables being laid out for guest-physical address @base_gpa. Offset 0 holds
 * the RSDP (so a 16-byte aligned base is enough for the legacy scan); the
 * XSDT and RSDT are written by acpi_blob_finish() from the tables listed.
 */
typedef struct AcpiBlob {
    GByteArray *data;
    uint64_t base_gpa;
    GArray *root; /* guint offsets of the tables the XSDT/RSDT list */
} AcpiBlob;

void acpi_blob_init(AcpiBlob *blob, uint64_t base_gpa);
/* Guest-physical address of the byte at @offset. */
uint64_t acpi_blob_gpa(const AcpiBlob *blob, gsize offset);
/* Pad with zeros until the next byte's guest address is a multiple of @align. */
void acpi_blob_align(AcpiBlob *blob, unsigned align);
/*
 * Start a table (8-byte aligned) with a header carrying @sig and @rev;
 * returns its offset. acpi_table_end() fixes length and checksum; @listed
 * adds it to the XSDT/RSDT.
 */
gsize acpi_table_begin(AcpiBlob *blob, const char *sig, uint8_t rev);
void acpi_table_end(AcpiBlob *blob, gsize start, bool listed);
/*
 * Write the XSDT (and an RSDT when every table is below 4 GiB), fill the
 * RSDP, and hand over the bytes; @rsdp_gpa gets the RSDP's address.
 */
GByteArray *acpi_blob_finish(AcpiBlob *blob, uint64_t *rsdp_gpa);
