// SPDX-License-Identifier: GPL-2.0
/*
 * Uprobes on a stripped library with a .gnu_debuglink whose debug file is
 * not installed (tests/tests/externs.rs), as IG's trace_ssl probes
 * libcrypto: a symbol of its .dynsym attaches and fires; a static function
 * only the debug file would know is skipped with the places searched, and
 * the run goes on.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>

#include <gadget/buffer.h>
#include <gadget/macros.h>
#include <gadget/types.h>

struct debuglink_event {
	gadget_pid pid;
	__u32 probe;
};

const volatile __u32 targ_pid = 0;
GADGET_PARAM(targ_pid);

GADGET_TRACER_MAP(events, 64 * 1024);
GADGET_TRACER(debuglink, events, debuglink_event);

static __always_inline int emit(void *ctx, __u32 probe)
{
	struct debuglink_event *e;

	if ((bpf_get_current_pid_tgid() >> 32) != targ_pid)
		return 0;
	e = gadget_reserve_buf(&events, sizeof(*e));
	if (!e)
		return 0;
	e->pid = targ_pid;
	e->probe = probe;
	gadget_submit_buf(ctx, &events, e, sizeof(*e));
	return 0;
}

SEC("uprobe/libc:getsid")
int debuglink_getsid(void *ctx)
{
	return emit(ctx, 1);
}

SEC("uprobe/libc:__libc_start_call_main")
int debuglink_static(void *ctx)
{
	return emit(ctx, 2);
}

char LICENSE[] SEC("license") = "GPL";
