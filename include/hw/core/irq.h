/* An interrupt line a device drives; the machine decides where it goes. */
#pragma once
#include <stdbool.h>

typedef struct IrqLine {
    void (*set_level)(void *opaque, unsigned line, bool level);
    void *opaque;
    unsigned line; /* e.g. the GSI */
} IrqLine;

static inline void irq_set(const IrqLine *irq, bool level)
{
    if (irq && irq->set_level) {
        irq->set_level(irq->opaque, irq->line, level);
    }
}

static inline void irq_pulse(const IrqLine *irq)
{
    irq_set(irq, true);
    irq_set(irq, false);
}
