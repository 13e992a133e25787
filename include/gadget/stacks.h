/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Kernel stack traces. gadget_get_kernel_stack(ctx) records the current
 * kernel stack in the map gadget_kernel_stacks and returns its id; an event
 * or map key field of type gadget_kernel_stack is printed with a companion
 * `<field>_syms` list of kernel symbols ("do_syscall_64+0x5d"), innermost
 * first. A negative id (no kernel stack, e.g. a sample in user mode) prints [].
 */
#ifndef __GADGET_STACKS_H
#define __GADGET_STACKS_H

#include <bpf/bpf_helpers.h>
#include <gadget/types.h>

#ifndef GADGET_MAX_STACK_DEPTH
#define GADGET_MAX_STACK_DEPTH 127
#endif
#ifndef GADGET_MAX_STACKS
#define GADGET_MAX_STACKS 10240
#endif

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, GADGET_MAX_STACKS);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, GADGET_MAX_STACK_DEPTH * sizeof(__u64));
} gadget_kernel_stacks SEC(".maps");

static __always_inline gadget_kernel_stack gadget_get_kernel_stack(void *ctx)
{
	return bpf_get_stackid(ctx, &gadget_kernel_stacks, 0);
}

#endif /* __GADGET_STACKS_H */
