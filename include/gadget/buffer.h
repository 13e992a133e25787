/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Event buffers for tracers. GADGET_TRACER_MAP(name, event_struct, bytes)
 * declares a ring buffer `name` whose value type is `struct event_struct`
 * (the seed's convention: the agent decodes events with that type and
 * rewrites the definition before loading) plus a per-CPU counter
 * `name_lost_samples`; gadget_reserve_buf() counts failed
 * reservations there, and the agent reports the sum as lost events.
 *
 * gadget_submit_buf() batches wake-ups: it only wakes the agent when the ring
 * holds GADGET_WAKEUP_BYTES or more (the agent also drains on a short timer),
 * so a busy tracepoint does not pay one wake-up per event.
 */
#ifndef __GADGET_BUFFER_H
#define __GADGET_BUFFER_H

#include <bpf/bpf_helpers.h>

#ifndef GADGET_WAKEUP_BYTES
#define GADGET_WAKEUP_BYTES (64 * 1024)
#endif

#define GADGET_TRACER_MAP(name, event_struct, bytes)           \
	struct {                                               \
		__uint(type, BPF_MAP_TYPE_RINGBUF);            \
		__uint(max_entries, bytes);                    \
		__type(value, struct event_struct);            \
	} name SEC(".maps");                                   \
	struct {                                               \
		__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);       \
		__uint(max_entries, 1);                        \
		__type(key, __u32);                            \
		__type(value, __u64);                          \
	} name##_lost_samples SEC(".maps")

static __always_inline void *__gadget_reserve_buf(void *map, void *lost, __u64 size)
{
	void *buf = bpf_ringbuf_reserve(map, size, 0);

	if (!buf) {
		__u32 zero = 0;
		__u64 *count = bpf_map_lookup_elem(lost, &zero);

		if (count)
			*count += 1; /* per-CPU slot: no atomics needed */
	}
	return buf;
}

#define gadget_reserve_buf(map, size) \
	__gadget_reserve_buf(&map, &map##_lost_samples, size)

static __always_inline void __gadget_submit_buf(void *map, void *buf)
{
	__u64 flags = bpf_ringbuf_query(map, BPF_RB_AVAIL_DATA) >= GADGET_WAKEUP_BYTES ?
			      BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;

	bpf_ringbuf_submit(buf, flags);
}

#define gadget_submit_buf(ctx, map, buf, size) __gadget_submit_buf(&map, buf)

/* Copies an event that already lives in a map value (too big for the stack). */
static __always_inline long __gadget_output_buf(void *map, void *lost, void *data, __u64 size)
{
	__u64 flags = bpf_ringbuf_query(map, BPF_RB_AVAIL_DATA) >= GADGET_WAKEUP_BYTES ?
			      BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
	long err = bpf_ringbuf_output(map, data, size, flags);

	if (err) {
		__u32 zero = 0;
		__u64 *count = bpf_map_lookup_elem(lost, &zero);

		if (count)
			*count += 1;
	}
	return err;
}

#define gadget_output_buf(ctx, map, data, size) \
	__gadget_output_buf(&map, &map##_lost_samples, data, size)

#endif /* __GADGET_BUFFER_H */
