/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * GPU metrics as a user-space bridge (gpu-ebpf-bridge, reading NVML) writes
 * them into pinned maps (gadget/gpu_bridge_maps.h). Layouts are Inspektor
 * Gadget's: the bridge and the gadgets share them.
 */
#ifndef __GADGET_GPU_TYPES_H
#define __GADGET_GPU_TYPES_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define GPU_SCHEMA_VERSION 1
#define GPU_MAX_DEVICES 16

/* The bridge itself: 32 bytes. */
struct gpu_meta {
	__u32 schema_version;
	__u32 n_devices;
	__u64 last_update_boottime_ns; /* CLOCK_BOOTTIME of the last update */
	__u32 helper_pid;
	__u32 _reserved;
	__s64 clock_offset_ns; /* CLOCK_REALTIME - CLOCK_BOOTTIME */
};

/* One device, 136 bytes. Percentages 0-100, memory in bytes, rates in kbit/s. */
struct gpu_device_metrics {
	__u64 timestamp_ns;
	__u32 sm_util_pct;
	__u32 mem_util_pct;
	__u64 mem_total;
	__u64 mem_used;
	__u64 mem_reserved;
	__u32 temp_c;
	__u32 power_mw;
	__u32 sm_clock_mhz;
	__u32 mem_clock_mhz;
	__u64 throttle_reasons;
	__u64 pcie_tx_kbps;
	__u64 pcie_rx_kbps;
	__u32 enc_util_pct;
	__u32 dec_util_pct;
	__u64 nvlink_tx_kbps;
	__u64 nvlink_rx_kbps;
	__u64 ecc_corrected_total;
	__u64 ecc_uncorrected_total;
	__u32 fan_speed_pct;
	__u32 compute_mode;
};

/* One process on one device. */
struct gpu_pid_metrics {
	__u64 timestamp_ns;
	__u64 used_gpu_memory;
	__u32 sm_util_pct;
	__u32 mem_util_pct;
	__u32 enc_util_pct;
	__u32 dec_util_pct;
	__u8 gpu_device;
	__u8 mig_instance;
	__u16 _pad;
};

/* One process over all its devices. */
struct gpu_pid_metrics_aggregated {
	__u64 timestamp_ns;
	__u64 used_gpu_memory_total;
	__u32 sm_util_pct_max;
	__u32 mem_util_pct_max;
	__u8 gpu_device_primary; /* GPU_DEVICE_PRIMARY_MULTI: several */
	__u8 device_count;
	__u16 _pad;
};

#define GPU_DEVICE_PRIMARY_MULTI 0xFF

#endif /* __GADGET_GPU_TYPES_H */
