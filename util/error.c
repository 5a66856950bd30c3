#include "util/error.h"

G_DEFINE_QUARK(vireo-error-quark, vireo_error)
