// SPDX-License-Identifier: GPL-2.0
/*
 * Three data sources in one object (tests/tests/datasources.rs), written the
 * Inspektor Gadget way: every getpriority(2) of targ_pid whose `who` is at
 * least WHO_BASE is
 *   - an event of tracer `calls` (its pid and who),
 *   - a count per who in map iterator `totals` (read and cleared every interval),
 *   - a count in slot (who - WHO_BASE) of linear histogram `whos` (step 1).
 * The test makes the calls itself, so it knows every value.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>

#include <gadget/buffer.h>
#include <gadget/histogram.h>
#include <gadget/macros.h>
#include <gadget/maps.bpf.h>
#include <gadget/types.h>

#define WHO_BASE 0x40000000

struct call_event {
	gadget_pid pid;
	__u32 who;
	__u32 which;
};

struct who_key {
	__u32 who;
};

struct who_count {
	gadget_counter__u64 calls;
};

const volatile __u32 targ_pid = 0;
GADGET_PARAM(targ_pid);

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct who_key);
	__type(value, struct who_count);
} totals_by_who SEC(".maps");

GADGET_TRACER_MAP(events, 1024 * 256);
GADGET_TRACER(calls, events, call_event);
GADGET_MAPITER(totals, totals_by_who);
GADGET_HIST_LINEAR(whos, "calls", 1);

SEC("tracepoint/syscalls/sys_enter_getpriority")
int multi_source_getpriority(struct trace_event_raw_sys_enter *ctx)
{
	struct who_key key = { .who = (__u32)ctx->args[1] };
	struct who_count zero = {}, *count;
	struct call_event *e;

	if ((bpf_get_current_pid_tgid() >> 32) != targ_pid || key.who < WHO_BASE ||
	    key.who >= WHO_BASE + GADGET_HIST_MAX_SLOTS)
		return 0;

	e = gadget_reserve_buf(&events, sizeof(*e));
	if (e) {
		e->pid = targ_pid;
		e->who = key.who;
		e->which = (__u32)ctx->args[0];
		gadget_submit_buf(ctx, &events, e, sizeof(*e));
	}
	count = bpf_map_lookup_or_try_init(&totals_by_who, &key, &zero);
	if (count)
		__sync_fetch_and_add(&count->calls, 1);
	gadget_hist_add_linear(&hist_whos, key.who - WHO_BASE, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
