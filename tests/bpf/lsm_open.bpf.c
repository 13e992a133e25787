// SPDX-License-Identifier: GPL-2.0
/* Test gadget: a BPF LSM program (lsm/file_open) reporting our own opens. */
#include <vmlinux/vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <gadget/buffer.h>

struct event {
	__u32 pid;
	__u32 flags;
};

const volatile pid_t targ_pid = 0;

GADGET_TRACER_MAP(print_events, event, 64 * 1024);

SEC("lsm/file_open")
int BPF_PROG(lsm_file_open, struct file *file)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	struct event *ev;

	if (pid != targ_pid)
		return 0;
	ev = gadget_reserve_buf(print_events, sizeof(*ev));
	if (!ev)
		return 0;
	ev->pid = pid;
	ev->flags = BPF_CORE_READ(file, f_flags);
	gadget_submit_buf(ctx, print_events, ev, sizeof(*ev));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
