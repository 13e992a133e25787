/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Markers that tell the agent what a gadget's globals and maps are. Each
 * marker is an unused global whose name carries the information (the
 * agent reads the names from the object's BTF); the names and macro
 * signatures are Inspektor Gadget's, so its gadgets build here unchanged.
 *
 *   GADGET_TRACER(name, map, event_struct)   a data source of events
 *   GADGET_ITER(name, row_struct, prog...)   a snapshot from iter/ programs
 *   GADGET_MAPITER(name, map)                a table read from a hash map
 *   GADGET_PARAM(var)                        `const volatile var` is a --flag
 *   GADGET_ITER_TARGET_MAP(prog, map)        the map an iter/bpf_map_elem walks
 *   GADGET_SK_TARGET_MAP(prog, map)          the sockmap an sk_skb/sk_msg uses
 *
 * Names must not contain "___": it separates the parts of a marker.
 */
#ifndef __GADGET_MACROS_H
#define __GADGET_MACROS_H

/* Token pasting after expansion, and counting up to 4 arguments. */
#define __GADGET_PASTE2(a, b) a##b
#define __GADGET_PASTE(a, b) __GADGET_PASTE2(a, b)
#define __GADGET_NARGS_PICK(_1, _2, _3, _4, n, ...) n
#define __GADGET_NARGS(...) __GADGET_NARGS_PICK(__VA_ARGS__, 4, 3, 2, 1)

/* Inspektor Gadget's spelling of the same helpers (some gadgets use them). */
#ifndef __CONCAT
#define __CONCAT(x, y) __GADGET_PASTE(x, y)
#endif
#define __VA_NARGS(...) __GADGET_NARGS(__VA_ARGS__)

#define __GADGET_MARKER(name) const void *name __attribute__((unused));

/*
 * A tracer: events of type `struct event_type` sent through `map_name` (a
 * ring buffer or perf event array, see GADGET_TRACER_MAP in gadget/buffer.h).
 * One object may have several tracers; each is a data source named `name`.
 */
#define GADGET_TRACER(name, map_name, event_type)                                  \
	__GADGET_MARKER(gadget_tracer_##name##___##map_name##___##event_type)      \
	const struct event_type *__gadget_tracer_type_##name __attribute__((unused));

/*
 * GADGET_PARAM(var): the `const volatile` global `var` is a parameter (a
 * --flag; gadget.yaml's params.ebpf.<var> may rename it and describe it).
 * In an object that uses these markers, only marked globals are parameters.
 *
 * GADGET_PARAM(type, var, default): gadgetd's older form, which also
 * declares the variable.
 */
#define __GADGET_PARAM_1(var) __GADGET_MARKER(gadget_param_##var)
#define __GADGET_PARAM_3(type, var, value) \
	const volatile type var = value;   \
	__GADGET_MARKER(gadget_param_##var)
#define GADGET_PARAM(...) \
	__GADGET_PASTE(__GADGET_PARAM_, __GADGET_NARGS(__VA_ARGS__))(__VA_ARGS__)

/* The marker of an iterator data source: gadget_iter_<name>___<type>___<prog>[___<prog>...]. */
#define __GADGET_ITER_1(name, type, p1) __GADGET_MARKER(gadget_iter_##name##___##type##___##p1)
#define __GADGET_ITER_2(name, type, p1, p2) \
	__GADGET_MARKER(gadget_iter_##name##___##type##___##p1##___##p2)
#define __GADGET_ITER_3(name, type, p1, p2, p3) \
	__GADGET_MARKER(gadget_iter_##name##___##type##___##p1##___##p2##___##p3)

/*
 * An iterator (snapshotter): rows of `struct type` written with
 * bpf_seq_write() by 1 to 3 SEC("iter/...") programs; the snapshot is the
 * union of their rows.
 */
#define GADGET_ITER(name, type, ...)                                                  \
	const struct type *unusedevent_##name##___##type __attribute__((unused));     \
	__GADGET_PASTE(__GADGET_ITER_, __GADGET_NARGS(__VA_ARGS__))(name, type, __VA_ARGS__)

/* The older name of GADGET_ITER. */
#define GADGET_SNAPSHOTTER(name, type, ...) GADGET_ITER(name, type, __VA_ARGS__)

/* A map iterator: the hash map `mapname` read every interval into a table. */
#define GADGET_MAPITER(name, mapname) __GADGET_MARKER(gadget_mapiter_##name##___##mapname)

/* The map a SEC("iter/bpf_map_elem") program iterates over. */
#define GADGET_ITER_TARGET_MAP(prog_name, mapname) \
	__GADGET_MARKER(gadget_mapelem_iter_target_##prog_name##___##mapname)

/* The sockmap or sockhash an sk_skb or sk_msg program attaches to. */
#define GADGET_SK_TARGET_MAP(prog_name, mapname) \
	__GADGET_MARKER(gadget_sk_prog_target_##prog_name##___##mapname)

/* ---- gadgetd's own markers (the seed's conventions) ---- */

/* Marks the row type of an iterator gadget without naming it (use GADGET_ITER). */
#define GADGET_ITER_TYPE(type) const type *gadget_iter_type __attribute__((unused))

/*
 * Toppers (`stats_*` maps) are cleared after every interval, so each table
 * shows that interval's activity. GADGET_STATS_KEEP() keeps the entries, for
 * running totals.
 */
#define GADGET_STATS_KEEP() const void *gadget_stats_keep __attribute__((unused))

/*
 * The older way for a socket filter to know its network namespace: the agent
 * sets gadget_current_netns to the namespace's inode and loads the object once
 * per namespace (such objects do not follow namespaces created later). Read
 * skb->cb[0] instead: the agent's dispatcher puts the namespace there, as
 * Inspektor Gadget's does.
 */
#define GADGET_NETNS_ID() const volatile __u64 gadget_current_netns = 0

/* Sampling rate of SEC("perf_event") programs (CPU clock, every CPU); default 49 Hz. */
#define GADGET_SAMPLE_HZ(hz) const volatile __u32 gadget_sample_hz = hz

#endif /* __GADGET_MACROS_H */
