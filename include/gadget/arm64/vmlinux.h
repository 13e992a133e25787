/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/* Kernel types for arm64, for `-I include/gadget/arm64` (Inspektor Gadget's build flags). */
#include "../../vmlinux/arm64/vmlinux.h"
