/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The pinned maps a GPU bridge fills (gadget/gpu_types.h). Define what the
 * gadget reads before including: GPU_BRIDGE_WANT_META, _DEVICE, _PER_PID,
 * _PER_PID_PER_DEVICE, or GPU_BRIDGE_WANT_ALL. Without a bridge the maps
 * stay empty and the helpers below return NULL.
 */
#ifndef __GADGET_GPU_BRIDGE_MAPS_H
#define __GADGET_GPU_BRIDGE_MAPS_H

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <gadget/gpu_types.h>

#ifdef GPU_BRIDGE_WANT_ALL
#define GPU_BRIDGE_WANT_META
#define GPU_BRIDGE_WANT_DEVICE
#define GPU_BRIDGE_WANT_PER_PID
#define GPU_BRIDGE_WANT_PER_PID_PER_DEVICE
#endif

#ifdef GPU_BRIDGE_WANT_META
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gpu_meta);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} gpu_meta SEC(".maps");

/* The bridge's metadata, or NULL when it was not updated in the last `stale_threshold_ms`. */
static __always_inline struct gpu_meta *gpu_meta_fresh(__u64 now_boot_ns, __u64 stale_threshold_ms)
{
	__u32 zero = 0;
	struct gpu_meta *meta = bpf_map_lookup_elem(&gpu_meta, &zero);

	if (!meta || now_boot_ns - meta->last_update_boottime_ns > stale_threshold_ms * 1000000ULL)
		return NULL;
	return meta;
}
#endif

#ifdef GPU_BRIDGE_WANT_DEVICE
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, GPU_MAX_DEVICES);
	__type(key, __u32);
	__type(value, struct gpu_device_metrics);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} gpu_device SEC(".maps");
#endif

#ifdef GPU_BRIDGE_WANT_PER_PID
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32); /* tgid in the initial pid namespace */
	__type(value, struct gpu_pid_metrics_aggregated);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} gpu_per_pid SEC(".maps");

/* The GPU usage of process `tgid` if it holds at least `min_gpu_mem_bytes`, else NULL. */
static __always_inline struct gpu_pid_metrics_aggregated *gpu_pid_holder(__u32 tgid,
									  __u64 min_gpu_mem_bytes)
{
	struct gpu_pid_metrics_aggregated *m = bpf_map_lookup_elem(&gpu_per_pid, &tgid);

	if (!m || m->used_gpu_memory_total < min_gpu_mem_bytes)
		return NULL;
	return m;
}
#endif

#ifdef GPU_BRIDGE_WANT_PER_PID_PER_DEVICE
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64); /* (tgid << 32) | device index */
	__type(value, struct gpu_pid_metrics);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} gpu_per_pid_per_device SEC(".maps");
#endif

#endif /* __GADGET_GPU_BRIDGE_MAPS_H */
