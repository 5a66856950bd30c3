/* The x86 "pc" machine type. */
#pragma once
#include "hw/core/machine.h"

extern const MachineType pc_machine_type;
