// SPDX-License-Identifier: GPL-2.0
/*
 * A map sized at run time, as Inspektor Gadget's user_stack_map.h declares
 * ig_build_id: max_entries 0, the size from ig_build_id_max_entries
 * (tests/tests/ig_conventions.rs).
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>

#include <gadget/buffer.h>
#include <gadget/macros.h>
#include <gadget/types.h>

struct event {
	gadget_pid pid;
	__u32 stored;
};

const volatile int ig_build_id_max_entries = 64;
GADGET_PARAM(ig_build_id_max_entries);

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u64));
	__uint(max_entries, 0); /* sized by the agent */
} ig_build_id SEC(".maps");

GADGET_TRACER_MAP(events, 4096 * 16);
GADGET_TRACER(sized, events, event);

SEC("tracepoint/syscalls/sys_enter_getppid")
int ig_test_sized(void *ctx)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	__u64 one = 1;
	struct event *e;

	e = gadget_reserve_buf(&events, sizeof(*e));
	if (!e)
		return 0;
	e->pid = pid;
	e->stored = bpf_map_update_elem(&ig_build_id, &pid, &one, BPF_ANY) == 0;
	gadget_submit_buf(ctx, &events, e, sizeof(*e));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
