/*
 * The ACPI tables of the x86 pc machine: RSDP, XSDT/RSDT, FADT, FACS, MADT,
 * MCFG and DSDT in one blob, placed in guest memory at ACPI_PC_TABLES_GPA.
 */
#pragma once
#include <glib.h>
#include <stdint.h>

/* The BIOS area the tables live in; the RSDP is at its start. */
#define ACPI_PC_TABLES_GPA 0xe0000
#define ACPI_PC_TABLES_SIZE 0x20000
/* The MADT's 8-bit APIC IDs, with the IOAPIC taking ID ncpus. */
#define ACPI_PC_MAX_CPUS 254

#define ACPI_PC_LAPIC_BASE 0xfee00000
#define ACPI_PC_IOAPIC_BASE 0xfec00000
#define ACPI_PC_IOAPIC_PINS 24
/* End (inclusive) of the 32-bit PCI MMIO window: the IOAPIC follows. */
#define ACPI_PC_PCI_MMIO32_END 0xfebfffff

#define ACPI_PC_ECAM_BUS_SIZE (1u << 20)

typedef struct AcpiPcConfig {
    unsigned ncpus;               /* 1..ACPI_PC_MAX_CPUS, APIC IDs 0..ncpus-1 */
    uint64_t pci_mmio32_start;    /* window runs to ACPI_PC_PCI_MMIO32_END */
    uint64_t pci_mmio64_start, pci_mmio64_size; /* size 0: no 64-bit window */
    /*
     * PCI Express ECAM for segment 0, buses 0..ecam_buses-1 (1 MiB each),
     * below 4 GiB: an MCFG plus a motherboard resource reserving it.
     * ecam_buses 0: no ECAM.
     */
    uint64_t ecam_base;
    unsigned ecam_buses;
} AcpiPcConfig;

/*
 * Build every table for a blob loaded at @base_gpa (16-byte aligned); the
 * result is at most ACPI_PC_TABLES_SIZE bytes. *@rsdp_gpa gets the RSDP's
 * guest address. An invalid @cfg is a programmer error.
 */
GByteArray *acpi_build_pc(const AcpiPcConfig *cfg, uint64_t base_gpa, uint64_t *rsdp_gpa);
