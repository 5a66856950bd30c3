/* From a pointer to an embedded member back to the structure that holds it. */
#pragma once
#include <stddef.h>

#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr) - offsetof(type, member)))
