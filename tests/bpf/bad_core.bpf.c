// SPDX-License-Identifier: GPL-2.0
/*
 * Test gadget: CO-RE relocations nothing in the kernel satisfies. The
 * guarded one is dead code and loads; the unguarded read of a field no
 * kernel has must fail naming the program, instruction, type and field.
 */
#include <vmlinux/vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <gadget/types.h>
#include <gadget/buffer.h>

struct event {
	__u32 pid;
	__u32 value;
};

struct task_struct___gone {
	int gadgetd_no_such_field;
} __attribute__((preserve_access_index));

GADGET_TRACER_MAP(print_events, event, 64 * 1024);

SEC("tracepoint/syscalls/sys_enter_getcwd")
int bad_core_getcwd(void *ctx)
{
	struct task_struct___gone *task = (void *)bpf_get_current_task();
	struct event *ev;

	ev = gadget_reserve_buf(print_events, sizeof(*ev));
	if (!ev)
		return 0;
	ev->pid = bpf_get_current_pid_tgid() >> 32;
	/* Guarded: poisoned too, but the verifier never reaches it. */
	if (bpf_core_field_exists(task->gadgetd_no_such_field))
		ev->value = BPF_CORE_READ(task, gadgetd_no_such_field);
	/* Unguarded: the verifier reaches the poisoned instruction. */
	ev->value += BPF_CORE_READ(task, gadgetd_no_such_field);
	gadget_submit_buf(ctx, print_events, ev, sizeof(*ev));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
