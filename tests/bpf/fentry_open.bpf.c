// SPDX-License-Identifier: GPL-2.0
/* Test gadget: an fentry program; this CI kernel refuses fentry, so loading must fail clearly. */
#include <vmlinux/vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <gadget/buffer.h>

struct event { __u32 pid; };

GADGET_TRACER_MAP(print_events, event, 4096);

SEC("fentry/do_sys_openat2")
int BPF_PROG(fentry_open)
{
	struct event *e = gadget_reserve_buf(&print_events, sizeof(*e));

	if (!e)
		return 0;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	gadget_submit_buf(ctx, &print_events, e, sizeof(*e));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
