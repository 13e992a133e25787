// SPDX-License-Identifier: GPL-2.0
/* Bad input: GADGET_PARAM naming no const volatile global. */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <gadget/buffer.h>
#include <gadget/macros.h>

struct event {
	__u32 pid;
};

const volatile __u32 threshold = 3;
GADGET_PARAM(threshhold);

GADGET_TRACER_MAP(events, 4096);
GADGET_TRACER(open, events, event);

SEC("tracepoint/syscalls/sys_enter_openat")
int bad_param_openat(void *ctx)
{
	struct event *e = gadget_reserve_buf(&events, sizeof(*e));

	if (!e)
		return 0;
	e->pid = threshold;
	gadget_submit_buf(ctx, &events, e, sizeof(*e));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
