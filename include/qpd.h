/*
 * qpd.h - a lock-free event dispatcher for dynamic binary instrumentation.
 *
 * Include this header for the whole API; each module has its own header
 * under qpd/ (core, vcpu, scoreboard, dispatch).
 */
#ifndef QPD_H
#define QPD_H

#include "qpd/core.h"
#include "qpd/vcpu.h"
#include "qpd/scoreboard.h"
#include "qpd/dispatch.h"

#endif /* QPD_H */
