// SPDX-License-Identifier: GPL-2.0
/*
 * A map pinned by name, as gadget/gpu_bridge_maps.h declares its maps
 * (tests/tests/ig_conventions.rs).
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>

#include <gadget/buffer.h>
#include <gadget/macros.h>
#include <gadget/types.h>

struct event {
	gadget_pid pid;
	__u64 shared;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ig_test_pinned SEC(".maps");

GADGET_TRACER_MAP(events, 4096 * 16);
GADGET_TRACER(pinned, events, event);

SEC("tracepoint/syscalls/sys_enter_getppid")
int ig_test_pin(void *ctx)
{
	__u32 zero = 0;
	__u64 *shared = bpf_map_lookup_elem(&ig_test_pinned, &zero);
	struct event *e;

	if (!shared)
		return 0;
	e = gadget_reserve_buf(&events, sizeof(*e));
	if (!e)
		return 0;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->shared = __sync_fetch_and_add(shared, 1) + 1;
	gadget_submit_buf(ctx, &events, e, sizeof(*e));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
