/*
 * memcount: a generation counter and a 64 KiB region in which every word
 * is a function of the generation and its index. Each generation checks the
 * whole region against the previous one before rewriting it, and prints
 * "memcount: gen N ok". A migration test saves and restores it: the
 * restored guest must go on from the generation it was saved at, and a
 * region (or a register holding the counter) from another point in time
 * shows up as a mismatch.
 */
#include "libguest.h"

#define WORDS (16 * 1024)

const char guest_name[] = "memcount";

static volatile uint32_t region[WORDS] __attribute__((aligned(4096)));

static uint32_t expected(uint32_t gen, uint32_t i)
{
    return gen * 2654435761u ^ (i * 40503u + 1);
}

int main(const struct hvm_start_info *si __attribute__((unused)))
{
    for (uint32_t gen = 1;; gen++) {
        for (uint32_t i = 0; gen > 1 && i < WORDS; i++) {
            if (region[i] != expected(gen - 1, i)) {
                guest_log("memcount: MISMATCH at gen %u word %u: %x, expected %x", gen, i, region[i],
                          expected(gen - 1, i));
                return 1;
            }
        }
        for (uint32_t i = 0; i < WORDS; i++) {
            region[i] = expected(gen, i);
        }
        guest_log("memcount: gen %u ok", gen);
    }
}
