/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Event buffers for tracers, with Inspektor Gadget's macros and calls:
 *
 *   GADGET_TRACER_MAP(events, 1024 * 256);          // ring buffer + lost counter
 *   GADGET_TRACER(open, events, event);             // gadget/macros.h
 *   ...
 *   struct event *e = gadget_reserve_buf(&events, sizeof(*e));
 *   if (!e) return 0;
 *   ...
 *   gadget_submit_buf(ctx, &events, e, sizeof(*e));  // or gadget_discard_buf(e)
 *
 * GADGET_TRACER_MAP(name, bytes) declares a BPF_MAP_TYPE_RINGBUF `name`, a
 * marker global `gadget_map_tracer_<name>` and a per-CPU counter
 * `<name>_lost_samples`, in which failed reservations are counted; the agent
 * reports their sum as lost events. On kernels without ring buffers (before
 * 5.8) the same calls fall back to a per-CPU scratch buffer and
 * bpf_perf_event_output() (the map must then be a perf event array).
 *
 * GADGET_TRACER_MAP(name, event_struct, bytes) is gadgetd's older form: the
 * map's value type names the event struct (the seed's `print_` maps).
 *
 * gadget_submit_buf() batches wake-ups: the kernel wakes the agent for the
 * first record after a drain (bpf_ringbuf_submit's default), and this header
 * also when a record takes the ring past a quarter full (GADGET_WAKEUP_BYTES,
 * if defined, instead); the agent drains a busy ring every few milliseconds,
 * so a busy tracepoint does not pay one wake-up per event and an idle agent
 * has no timer to run.
 */
#ifndef __GADGET_BUFFER_H
#define __GADGET_BUFFER_H

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <gadget/macros.h>

#ifndef GADGET_MAX_EVENT_SIZE
#define GADGET_MAX_EVENT_SIZE 10240
#endif


#define __GADGET_LOST_SAMPLES_MAP(name)                  \
	struct {                                         \
		__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); \
		__uint(max_entries, 1);                  \
		__uint(key_size, sizeof(__u32));         \
		__uint(value_size, sizeof(__u64));       \
	} name##_lost_samples SEC(".maps");

#define __GADGET_TRACER_MAP_2(name, bytes)               \
	struct {                                         \
		__uint(type, BPF_MAP_TYPE_RINGBUF);      \
		__uint(max_entries, bytes);              \
	} name SEC(".maps");                             \
	__GADGET_MARKER(gadget_map_tracer_##name)        \
	__GADGET_LOST_SAMPLES_MAP(name)

#define __GADGET_TRACER_MAP_3(name, event_struct, bytes) \
	struct {                                         \
		__uint(type, BPF_MAP_TYPE_RINGBUF);      \
		__uint(max_entries, bytes);              \
		__type(value, struct event_struct);      \
	} name SEC(".maps");                             \
	__GADGET_LOST_SAMPLES_MAP(name)

#define GADGET_TRACER_MAP(...) \
	__GADGET_PASTE(__GADGET_TRACER_MAP_, __GADGET_NARGS(__VA_ARGS__))(__VA_ARGS__)

#define __GADGET_HAS_RINGBUF(helper) bpf_core_enum_value_exists(enum bpf_func_id, helper)

static __always_inline void __gadget_count_lost(void *lost_samples)
{
	const __u32 zero = 0;
	__u64 *count = bpf_map_lookup_elem(lost_samples, &zero);

	if (count)
		*count += 1; /* per-CPU slot: no atomics needed */
}

/*
 * Flags for a record of `size` bytes with `before` bytes waiting ahead of it:
 * a forced wake-up when the record takes the ring past GADGET_WAKEUP_BYTES
 * (default: a quarter of the ring, the agent's "filling up" mark), once per
 * crossing rather than per record (each forced wake-up is an interrupt in the
 * traced task's context), and on every record once more than twice that
 * waits (the agent is lagging; better a slower task than lost events);
 * otherwise flags 0, with which the kernel wakes the reader only if it had
 * read everything before this record.
 */
static __always_inline __u64 __gadget_wakeup_flags(void *map, __u64 before, __u64 size)
{
	/* The ring's header (8 bytes) and padding to 8 come with every record. */
	__u64 after = before + ((size + 8 + 7) & ~7ULL);
#ifdef GADGET_WAKEUP_BYTES
	__u64 urgent = GADGET_WAKEUP_BYTES;
#else
	__u64 urgent = bpf_ringbuf_query(map, BPF_RB_RING_SIZE) / 4;
#endif
	/* Past half full the agent is lagging: every record wakes it (and so
	 * slows the traced task a little) rather than the ring overflowing. */
	return (before < urgent && after >= urgent) || after >= 2 * urgent ? BPF_RB_FORCE_WAKEUP : 0;
}

/* Bytes waiting in the ring (records reserved by anyone included). */
#define __gadget_ring_waiting(map) bpf_ringbuf_query(map, BPF_RB_AVAIL_DATA)

#ifndef GADGET_NO_BUF_RESERVE
/* Scratch space for one event per CPU, used where ring buffers are missing. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, GADGET_MAX_EVENT_SIZE);
} gadget_heap SEC(".maps");

static __always_inline void *__gadget_reserve_buf(void *map, void *lost_samples, __u64 size)
{
	const __u32 zero = 0;

	if (__GADGET_HAS_RINGBUF(BPF_FUNC_ringbuf_reserve)) {
		void *buf = bpf_ringbuf_reserve(map, size, 0);

		if (!buf)
			__gadget_count_lost(lost_samples);
		return buf;
	}
	return bpf_map_lookup_elem(&gadget_heap, &zero);
}

/*
 * gadget_reserve_buf(&map, size): room for one event, or NULL (counted as
 * lost). The `&map` argument's last token names the counter map too.
 */
#define gadget_reserve_buf(map, size) __gadget_reserve_buf(map, map##_lost_samples, size)

/* Gives back a reserved buffer without sending it. */
static __always_inline void gadget_discard_buf(void *buf)
{
	if (__GADGET_HAS_RINGBUF(BPF_FUNC_ringbuf_discard))
		bpf_ringbuf_discard(buf, 0);
}

/* Sends a buffer from gadget_reserve_buf(); returns 0 or a negative error. */
static __always_inline long gadget_submit_buf(void *ctx, void *map, void *buf, __u64 size)
{
	if (__GADGET_HAS_RINGBUF(BPF_FUNC_ringbuf_submit)) {
		/* Reserved already: the record is among the waiting bytes. */
		__u64 rec = (size + 8 + 7) & ~7ULL;
		__u64 waiting = __gadget_ring_waiting(map);

		bpf_ringbuf_submit(buf, __gadget_wakeup_flags(map, waiting > rec ? waiting - rec : 0,
								size));
		return 0;
	}
	return bpf_perf_event_output(ctx, map, BPF_F_CURRENT_CPU, buf, size);
}
#endif /* GADGET_NO_BUF_RESERVE */

static __always_inline long __gadget_output_buf(void *ctx, void *map, void *lost_samples,
						void *buf, __u64 size)
{
	if (__GADGET_HAS_RINGBUF(BPF_FUNC_ringbuf_output)) {
		if (bpf_ringbuf_output(map, buf, size,
				       __gadget_wakeup_flags(map, __gadget_ring_waiting(map), size)))
			__gadget_count_lost(lost_samples);
		return 0;
	}
	return bpf_perf_event_output(ctx, map, BPF_F_CURRENT_CPU, buf, size);
}

/*
 * gadget_output_buf(ctx, &map, buf, size): copies an event that already
 * lives elsewhere (e.g. a map value too big for the stack).
 */
#define gadget_output_buf(ctx, map, buf, size) \
	__gadget_output_buf(ctx, map, map##_lost_samples, buf, size)

#endif /* __GADGET_BUFFER_H */
