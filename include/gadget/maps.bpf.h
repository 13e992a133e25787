/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Map helpers shared by gadgets. */
#ifndef __GADGET_MAPS_BPF_H
#define __GADGET_MAPS_BPF_H

#include <bpf/bpf_helpers.h>
#include <asm-generic/errno.h>

/*
 * The value at `key`, inserting `init` first when there is none. NULL when
 * the map is full. Two CPUs racing to insert both get the same entry.
 */
static __always_inline void *bpf_map_lookup_or_try_init(void *map, const void *key,
							  const void *init)
{
	void *value = bpf_map_lookup_elem(map, key);
	long err;

	if (value)
		return value;
	err = bpf_map_update_elem(map, key, init, BPF_NOEXIST);
	if (err && err != -EEXIST)
		return NULL;
	return bpf_map_lookup_elem(map, key);
}

#endif /* __GADGET_MAPS_BPF_H */
