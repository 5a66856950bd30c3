/* The GError domain for errors that reach a user. */
#pragma once
#include <glib.h>

#define VIREO_ERROR (vireo_error_quark())
GQuark vireo_error_quark(void);

typedef enum {
    VIREO_ERROR_INVALID,     /* bad input: option, argument, file contents */
    VIREO_ERROR_UNSUPPORTED, /* the host lacks a capability */
    VIREO_ERROR_FAILED,      /* an operation failed (I/O, ioctl) */
} VireoErrorCode;
