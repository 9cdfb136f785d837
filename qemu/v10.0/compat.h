/*
 * QEMU 10.0.x (plugin API 4): what the shared plugins/core.c needs that
 * differs between QEMU versions.  qemu/apply installs this file as
 * plugins/qpd-compat.h.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#ifndef QPD_COMPAT_H
#define QPD_COMPAT_H

#include "qemu/qemu-plugin.h"

#define QPD_QEMU_PLUGIN_API 4
QEMU_BUILD_BUG_MSG(QEMU_PLUGIN_VERSION != QPD_QEMU_PLUGIN_API,
                   "plugins/qpd-compat.h is not the one for this QEMU");

/* Callbacks cannot be told which registers they may touch before 10.2. */
static inline void qpd_qemu_set_cb_flags(CPUState *cpu,
                                         enum qemu_plugin_cb_flags flags)
{
}

/* Flushes translated code; the caller is in an exclusive section. */
static inline void qpd_qemu_tb_flush_exclusive(void)
{
    tb_flush(current_cpu);
}

#endif
