/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * CO-RE kernel type definitions, per target architecture.
 * Selected by libbpf's __TARGET_ARCH_<arch> define (gadgetctl build and the
 * Makefile pass it); defaults to the architecture clang is running on.
 * How each file was made: include/vmlinux/README.md.
 */
#ifndef __GADGET_VMLINUX_DISPATCH_H
#define __GADGET_VMLINUX_DISPATCH_H

#if defined(__TARGET_ARCH_arm64) || (!defined(__TARGET_ARCH_x86) && defined(__aarch64__))
#include "arm64/vmlinux.h"
#else
#include "x86/vmlinux.h"
#endif

#endif
