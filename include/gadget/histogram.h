/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Histograms for profilers. A `hist_<name>` hash map from a slot number to a
 * count is read by the agent and printed as a histogram when the run stops
 * (and every --interval): log2 slots like bcc's, or linear slots of a fixed
 * step. The key's typedef says which:
 *
 *   GADGET_HIST_LOG2(latency, "usecs");      // hist_latency, log2 slots
 *   GADGET_HIST_LINEAR(size, "bytes", 512);  // hist_size, slots of 512
 *   ...
 *   gadget_hist_add_log2(&hist_latency, delta_us);
 */
#ifndef __GADGET_HISTOGRAM_H
#define __GADGET_HISTOGRAM_H

#include <bpf/bpf_helpers.h>

#ifndef GADGET_HIST_MAX_SLOTS
#define GADGET_HIST_MAX_SLOTS 64
#endif

typedef __u32 gadget_hist_log2;
typedef __u32 gadget_hist_linear;

#define GADGET_HIST_LOG2(name, unit)                                \
	const volatile char gadget_hist_##name##_unit[] = unit;     \
	struct {                                                    \
		__uint(type, BPF_MAP_TYPE_HASH);                    \
		__uint(max_entries, GADGET_HIST_MAX_SLOTS);         \
		__type(key, gadget_hist_log2);                      \
		__type(value, __u64);                               \
	} hist_##name SEC(".maps")

#define GADGET_HIST_LINEAR(name, unit, step)                        \
	const volatile char gadget_hist_##name##_unit[] = unit;     \
	const volatile __u64 gadget_hist_##name##_step = step;      \
	struct {                                                    \
		__uint(type, BPF_MAP_TYPE_HASH);                    \
		__uint(max_entries, GADGET_HIST_MAX_SLOTS);         \
		__type(key, gadget_hist_linear);                    \
		__type(value, __u64);                               \
	} hist_##name SEC(".maps")

/* floor(log2(v)), 0 for v == 0. */
static __always_inline __u32 gadget_log2(__u64 v)
{
	__u32 r = 0;

	if (v >= (1ULL << 32)) { v >>= 32; r += 32; }
	if (v >= (1ULL << 16)) { v >>= 16; r += 16; }
	if (v >= (1ULL << 8)) { v >>= 8; r += 8; }
	if (v >= (1ULL << 4)) { v >>= 4; r += 4; }
	if (v >= (1ULL << 2)) { v >>= 2; r += 2; }
	if (v >= (1ULL << 1)) { r += 1; }
	return r;
}

static __always_inline void __gadget_hist_add(void *map, __u32 slot)
{
	__u64 one = 1, *count;

	if (slot >= GADGET_HIST_MAX_SLOTS)
		slot = GADGET_HIST_MAX_SLOTS - 1;
	count = bpf_map_lookup_elem(map, &slot);
	if (count) {
		__sync_fetch_and_add(count, 1);
		return;
	}
	if (bpf_map_update_elem(map, &slot, &one, BPF_NOEXIST))
		if ((count = bpf_map_lookup_elem(map, &slot)))
			__sync_fetch_and_add(count, 1);
}

#define gadget_hist_add_log2(map, value) __gadget_hist_add(map, gadget_log2(value))
#define gadget_hist_add_linear(map, value, step) __gadget_hist_add(map, (__u32)((value) / (step)))

#endif /* __GADGET_HISTOGRAM_H */
