// SPDX-License-Identifier: GPL-2.0
/* Test gadget: a kprobe; this CI kernel has no kprobe PMU, so attach must fail clearly. */
#include <vmlinux/vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <gadget/buffer.h>

struct event { __u32 pid; };

GADGET_TRACER_MAP(print_events, event, 4096);

SEC("kprobe/do_sys_openat2")
int kprobe_open(void *ctx)
{
	struct event *e = gadget_reserve_buf(&print_events, sizeof(*e));

	if (!e)
		return 0;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	gadget_submit_buf(ctx, &print_events, e, sizeof(*e));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
