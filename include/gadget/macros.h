/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Conveniences for gadget authors. */
#ifndef __GADGET_MACROS_H
#define __GADGET_MACROS_H

/*
 * Declares a gadget parameter: a `const volatile` global that the agent
 * exposes as `--NAME` with the initializer as default.
 */
#define GADGET_PARAM(type, name, value) const volatile type name = value

/* Marks the output type of an iterator program (a snapshotter). */
#define GADGET_ITER_TYPE(type) const type *gadget_iter_type __attribute__((unused))

/*
 * Toppers (`stats_*` maps) are cleared after every interval, so each table
 * shows that interval's activity. GADGET_STATS_KEEP() keeps the entries, for
 * running totals.
 */
#define GADGET_STATS_KEEP() const void *gadget_stats_keep __attribute__((unused))

/*
 * Socket filters see the packets of one network namespace. The agent sets
 * gadget_current_netns to that namespace's inode before loading (once per
 * namespace with --all-netns), so events can say where they were seen.
 */
#define GADGET_NETNS_ID() const volatile __u64 gadget_current_netns = 0

/* Sampling rate of SEC("perf_event") programs (CPU clock, every CPU); default 49 Hz. */
#define GADGET_SAMPLE_HZ(hz) const volatile __u32 gadget_sample_hz = hz

#endif /* __GADGET_MACROS_H */
