// SPDX-License-Identifier: GPL-2.0
/*
 * profile_blockio: block I/O latency histogram, from the block request
 * tracepoints (no kprobes needed). One data source, the log2 histogram
 * `blockio` (gadget/histogram.h). The common filters select the task that
 * issues or queues a request.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include <gadget/filter.h>
#include <gadget/histogram.h>
#include <gadget/macros.h>
#include <gadget/types.h>

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

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, struct request_id);
	__type(value, __u64);
} start SEC(".maps");

GADGET_HIST_LOG2(blockio, "usecs");

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
int ig_profio_insert(struct trace_event_raw_block_rq *ctx)
{
	if (!targ_queued)
		return 0;
	return begin(ctx->dev, ctx->sector);
}

SEC("tracepoint/block/block_rq_issue")
int ig_profio_issue(struct trace_event_raw_block_rq *ctx)
{
	if (targ_queued)
		return 0;
	return begin(ctx->dev, ctx->sector);
}

SEC("tracepoint/block/block_rq_complete")
int ig_profio_done(struct trace_event_raw_block_rq_completion *ctx)
{
	struct request_id id = { .dev = ctx->dev, .sector = ctx->sector };
	__u64 *ts = bpf_map_lookup_elem(&start, &id);
	__u64 delta;

	if (!ts)
		return 0;
	delta = (bpf_ktime_get_ns() - *ts) / 1000;
	bpf_map_delete_elem(&start, &id);
	gadget_hist_add_log2(&hist_blockio, delta);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
