/*
 * QEMU 10.2.x (plugin API 5): what the shared plugins/core.c needs that
 * differs between QEMU versions.  qemu/apply installs this file as
 * plugins/qpd-compat.h.  API 5 adds the discontinuity events and the
 * register-access flags of callbacks (see core.c's "plugin API 5" part).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#ifndef QPD_COMPAT_H
#define QPD_COMPAT_H

#include "qemu/qemu-plugin.h"

#define QPD_QEMU_PLUGIN_API 5
QEMU_BUILD_BUG_MSG(QEMU_PLUGIN_VERSION != QPD_QEMU_PLUGIN_API,
                   "plugins/qpd-compat.h is not the one for this QEMU");

/* Which registers a running callback may read or write. */
static inline void qpd_qemu_set_cb_flags(CPUState *cpu,
                                         enum qemu_plugin_cb_flags flags)
{
    qemu_plugin_set_cb_flags(cpu, flags);
}

/* Flushes translated code; the caller is in an exclusive section. */
static inline void qpd_qemu_tb_flush_exclusive(void)
{
    tb_flush__exclusive_or_serial();
}

#endif
