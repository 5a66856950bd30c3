/* hello: the smallest useful guest; proves entry, serial and poweroff. */
#include "libguest.h"

const char guest_name[] = "hello";

int main(const struct hvm_start_info *si)
{
    guest_log("hello from the guest");
    guest_log("start_info version=%u flags=0x%x nr_modules=%u cmdline=\"%s\"",
              si->version, si->flags, si->nr_modules,
              si->cmdline_paddr && !(si->cmdline_paddr >> 32)
                  ? (const char *)phys((uint32_t)si->cmdline_paddr) : "");
    return 0;
}
