/* A QMP server serving a running VM, with the runtime's events forwarded. */
#pragma once
#include "monitor/monitor.h"
#include "system/runtime.h"

MonitorServer *monitor_server_for_runtime(Runtime *rt);
