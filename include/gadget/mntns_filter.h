/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Filtering by mount namespace. The agent fills gadget_mntns_filter_map with
 * the mount namespaces of the selected containers and sets
 * gadget_filter_by_mntns before the programs attach; with no selection the
 * map stays empty and nothing is discarded.
 */
#ifndef __GADGET_MNTNS_FILTER_H
#define __GADGET_MNTNS_FILTER_H

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <gadget/types.h>

#ifndef GADGET_MAX_CONTAINERS
#define GADGET_MAX_CONTAINERS 1024
#endif

/* Set by the agent (a `gadget_` prefix hides it from the parameter list). */
const volatile bool gadget_filter_by_mntns = false;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, GADGET_MAX_CONTAINERS);
	__type(key, gadget_mntns_id);
	__type(value, __u32);
} gadget_mntns_filter_map SEC(".maps");

/* True when the agent asked for filtering and this namespace is not selected. */
static __always_inline bool gadget_should_discard_mntns_id(gadget_mntns_id mntns_id)
{
	return gadget_filter_by_mntns && !bpf_map_lookup_elem(&gadget_mntns_filter_map, &mntns_id);
}

/* gadgetd's older API had gadget_get_mntns_id() here; tracing programs get it too. */
#ifndef GADGET_TYPE_NETWORKING
#include <gadget/mntns.h>
#endif

#endif /* __GADGET_MNTNS_FILTER_H */
