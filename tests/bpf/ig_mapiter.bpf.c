// SPDX-License-Identifier: GPL-2.0
/*
 * A GADGET_MAPITER map iterator: files created (openat with O_CREAT) per
 * process, read and cleared every interval (tests/tests/ig_conventions.rs).
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>

#include <gadget/filter.h>
#include <gadget/macros.h>
#include <gadget/maps.bpf.h>
#include <gadget/types.h>

struct creator {
	gadget_pid pid;
};

struct creations {
	gadget_counter__u64 creates;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct creator);
	__type(value, struct creations);
} creates_by_pid SEC(".maps");

GADGET_MAPITER(creators, creates_by_pid);

SEC("tracepoint/syscalls/sys_enter_openat")
int ig_test_creat(struct trace_event_raw_sys_enter *ctx)
{
	struct creator key = { .pid = bpf_get_current_pid_tgid() >> 32 };
	struct creations zero = {}, *count;

	if (!((int)ctx->args[2] & 0100 /* O_CREAT */) || gadget_should_discard_data_current())
		return 0;
	count = bpf_map_lookup_or_try_init(&creates_by_pid, &key, &zero);
	if (count)
		__sync_fetch_and_add(&count->creates, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
