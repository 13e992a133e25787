// SPDX-License-Identifier: GPL-2.0
/*
 * profile_blockio: block I/O latency, from the block request tracepoints
 * (no kprobes needed). Laid out as Inspektor Gadget's profile_blockio: map
 * iterator `blockio` over the hash map `hists`, one row per device (`dev`,
 * as the kernel numbers it: major << 20 | minor) with the log2 histogram
 * `latency` of microseconds (gadget_histogram_slot__u32: slot n counts
 * requests of [2^n, 2^(n+1)) us, slot 0 those under 2 us, as the slots
 * are printed), read and cleared every interval. The common filters
 * select the task that issues or queues a request.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include <gadget/filter.h>
#include <gadget/histogram.h>
#include <gadget/macros.h>
#include <gadget/maps.bpf.h>
#include <gadget/types.h>

#define MAX_SLOTS 27
#define MAX_ENTRIES 10240

/* Only this device (--dev; kernel dev_t: major << 20 | minor; 0: all). */
const volatile __u32 targ_dev = 0;
GADGET_PARAM(targ_dev);
/* Time from insertion into the queue, not from issue to the device (--queued). */
const volatile bool targ_queued = false;
GADGET_PARAM(targ_queued);

/* No padding: the whole key is compared, and padding would be stack garbage. */
struct request_id {
	__u64 dev;
	__u64 sector;
};

struct hist_key {
	__u32 dev;
};

struct hist_value {
	gadget_histogram_slot__u32 latency[MAX_SLOTS];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_ENTRIES);
	__type(key, struct request_id);
	__type(value, __u64);
} start SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_ENTRIES);
	__type(key, struct hist_key);
	__type(value, struct hist_value);
} hists SEC(".maps");

GADGET_MAPITER(blockio, hists);

static __always_inline int begin(__u32 dev, __u64 sector)
{
	struct request_id id = { .dev = dev, .sector = sector };
	__u64 ts = bpf_ktime_get_ns();

	if (targ_dev && targ_dev != dev)
		return 0;
	if (gadget_should_discard_data_current())
		return 0;
	bpf_map_update_elem(&start, &id, &ts, BPF_ANY);
	return 0;
}

SEC("tracepoint/block/block_rq_insert")
int ig_profio_ins(struct trace_event_raw_block_rq *ctx)
{
	if (!targ_queued)
		return 0;
	return begin(ctx->dev, ctx->sector);
}

SEC("tracepoint/block/block_rq_issue")
int ig_profio_iss(struct trace_event_raw_block_rq *ctx)
{
	if (targ_queued)
		return 0;
	return begin(ctx->dev, ctx->sector);
}

SEC("tracepoint/block/block_rq_complete")
int ig_profio_done(struct trace_event_raw_block_rq_completion *ctx)
{
	struct request_id id = { .dev = ctx->dev, .sector = ctx->sector };
	struct hist_key key = { .dev = ctx->dev };
	static const struct hist_value zero;
	struct hist_value *hist;
	__u64 *ts = bpf_map_lookup_elem(&start, &id);
	__u32 slot;

	if (!ts)
		return 0;
	/* floor(log2(us)): the slot whose printed range holds the value. */
	slot = gadget_log2((bpf_ktime_get_ns() - *ts) / 1000);
	bpf_map_delete_elem(&start, &id);
	if (slot >= MAX_SLOTS)
		slot = MAX_SLOTS - 1;
	hist = bpf_map_lookup_or_try_init(&hists, &key, &zero);
	if (hist)
		__sync_fetch_and_add(&hist->latency[slot], 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
