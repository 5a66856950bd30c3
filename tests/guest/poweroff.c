/* poweroff: the ACPI tables' view of S5, before the runtime enters it. */
#include "libguest.h"

const char guest_name[] = "poweroff";

int main(const struct hvm_start_info *si)
{
    struct acpi_info ai;
    const char *err = acpi_probe(si, &ai);

    if (err) {
        guest_fail("acpi: %s", err);
    }
    guest_log("rsdp=0x%x source=%s revision=%u", ai.rsdp, ai.rsdp_source,
              ai.rsdp_revision);
    guest_log("fadt=0x%x dsdt=0x%x", ai.fadt, ai.dsdt);
    if (ai.pm1a_cnt) {
        guest_log("pm1a_cnt=0x%x%s slp_typ=%u", ai.pm1a_cnt, ai.mmio ? " (mmio)" : "",
                  ai.slp_typ);
    } else {
        guest_log("sleep_control=0x%x%s slp_typ=%u", ai.sleep_control,
                  ai.mmio ? " (mmio)" : "", ai.slp_typ);
    }
    return 0;
}
