/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/* Kernel types for amd64, for `-I include/gadget/amd64` (Inspektor Gadget's build flags). */
#include "../../vmlinux/x86/vmlinux.h"
