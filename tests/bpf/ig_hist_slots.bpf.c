// SPDX-License-Identifier: GPL-2.0
/*
 * Histogram-slot arrays in a GADGET_MAPITER map, as IG's profile_blockio
 * keeps them (tests/tests/externs.rs): every getpriority(2) of targ_pid
 * whose `who` is HIST_WHO_BASE + v (v < 2^24) counts v in slot
 * floor(log2(v)) (0 for v = 0) of both arrays (u32 and u64 slots) of the row
 * of key `kind` = 1 (v even) or 2 (v odd): slot n is [2^n, 2^(n+1)), as IG
 * prints these arrays.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>

#include <gadget/bits.bpf.h>
#include <gadget/macros.h>
#include <gadget/types.h>

#define HIST_WHO_BASE 0x48000000
#define SMALL_SLOTS 26
#define BIG_SLOTS 40

struct hist_key {
	__u32 kind;
};

struct hist_value {
	gadget_histogram_slot__u32 small[SMALL_SLOTS];
	gadget_histogram_slot__u64 big[BIG_SLOTS];
};

const volatile __u32 targ_pid = 0;
GADGET_PARAM(targ_pid);

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, struct hist_key);
	__type(value, struct hist_value);
} hists SEC(".maps");

GADGET_MAPITER(values, hists);

static struct hist_value initial_hist;

SEC("tracepoint/syscalls/sys_enter_getpriority")
int ig_hist_slots_getpriority(struct trace_event_raw_sys_enter *ctx)
{
	__u32 who = (__u32)ctx->args[1];
	struct hist_key key = {};
	struct hist_value *h;
	__u64 v, slot;

	if ((bpf_get_current_pid_tgid() >> 32) != targ_pid || who < HIST_WHO_BASE ||
	    who >= HIST_WHO_BASE + (1 << 24))
		return 0;
	v = who - HIST_WHO_BASE;
	key.kind = (v & 1) ? 2 : 1;
	h = bpf_map_lookup_elem(&hists, &key);
	if (!h) {
		bpf_map_update_elem(&hists, &key, &initial_hist, BPF_NOEXIST);
		h = bpf_map_lookup_elem(&hists, &key);
		if (!h)
			return 0;
	}
	slot = log2(v);
	if (slot < SMALL_SLOTS)
		__sync_fetch_and_add(&h->small[slot], 1);
	if (slot < BIG_SLOTS)
		__sync_fetch_and_add(&h->big[slot], 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
