// SPDX-License-Identifier: GPL-2.0
/*
 * A comparison with a mutable global that clang 14 does not inline:
 * the object calls `memcmp`, which it does not define (as IG's trace_tcp
 * built by clang 14). The load names the call and its program (externs.rs).
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>

#include <gadget/buffer.h>
#include <gadget/macros.h>
#include <gadget/types.h>

__u8 all_zero[16] = {};

struct libcall_event {
	__u32 zero;
};

GADGET_TRACER_MAP(events, 4096);
GADGET_TRACER(libcall, events, libcall_event);

SEC("tracepoint/syscalls/sys_enter_getpriority")
int libcall_getpriority(struct trace_event_raw_sys_enter *ctx)
{
	__u8 addr[16] = {};
	struct libcall_event *e;

	bpf_probe_read_kernel(addr, sizeof(addr), (void *)ctx->args[0]);
	e = gadget_reserve_buf(&events, sizeof(*e));
	if (!e)
		return 0;
	e->zero = __builtin_memcmp(addr, &all_zero, sizeof(addr)) == 0;
	gadget_submit_buf(ctx, &events, e, sizeof(*e));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
