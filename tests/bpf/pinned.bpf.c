// SPDX-License-Identifier: GPL-2.0
/*
 * Test gadget: a map pinned by name (LIBBPF_PIN_BY_NAME) counting our
 * getcwd calls. Each run pins it in its own bpffs, so a second run starts
 * from zero instead of the first run's leftovers.
 */
#include <vmlinux/vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <gadget/buffer.h>

struct event {
	__u32 pid;
	__u64 count;
};

const volatile pid_t targ_pid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pin_counts SEC(".maps");

GADGET_TRACER_MAP(print_events, event, 64 * 1024);

SEC("tracepoint/syscalls/sys_enter_getcwd")
int pinned_getcwd(void *ctx)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	__u64 one = 1, *count;
	struct event *ev;

	if (pid != targ_pid)
		return 0;
	count = bpf_map_lookup_elem(&pin_counts, &pid);
	if (count)
		__sync_fetch_and_add(count, 1);
	else
		bpf_map_update_elem(&pin_counts, &pid, &one, BPF_ANY);
	count = bpf_map_lookup_elem(&pin_counts, &pid);
	ev = gadget_reserve_buf(print_events, sizeof(*ev));
	if (!ev)
		return 0;
	ev->pid = pid;
	ev->count = count ? *count : 0;
	gadget_submit_buf(ctx, print_events, ev, sizeof(*ev));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
