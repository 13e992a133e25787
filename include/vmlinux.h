/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * `#include <vmlinux.h>` (Inspektor Gadget's spelling, with -I include):
 * the kernel types of the target architecture, picked by vmlinux/vmlinux.h.
 */
#include "vmlinux/vmlinux.h"
