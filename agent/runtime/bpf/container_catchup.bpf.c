// SPDX-License-Identifier: GPL-2.0
/*
 * Kernel-side catch-up for container filters: a container the agent has
 * heard of (its runtime's create event) but whose processes it cannot name
 * yet is put in the run's mount-namespace filter by its first exec, before
 * its first instruction of user code, by matching the cgroup the runtime
 * created for it. One instance per filtered run; its
 * gadget_mntns_filter_map is the run's (map reuse). docs/containers.md.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#define CGROUP_NAME_LEN 128

/* A cgroup's own name (the last path component), zero-padded. */
struct cgroup_name {
	char s[CGROUP_NAME_LEN];
};

/* The cgroup names the runtimes give the containers the run is waiting for. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct cgroup_name);
	__type(value, __u8);
} gadget_catchup_cgroups SEC(".maps");

/* The run's filter (include/gadget/mntns_filter.h's map). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, __u32);
} gadget_mntns_filter_map SEC(".maps");

/* Mount namespaces caught here, with the time (boot clock, ns) of the exec. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, __u64);
} gadget_catchup_caught SEC(".maps");

/*
 * Mount namespaces never added: the host's and the agent's (a runtime's
 * helpers, `runc init`, exec in the container's cgroup before they enter
 * its namespaces).
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8);
	__type(key, __u64);
	__type(value, __u8);
} gadget_catchup_ignore SEC(".maps");

/* The key buffer: too big for comfort on the 512-byte stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cgroup_name);
} gadget_catchup_scratch SEC(".maps");

struct kernfs_node___old {
	struct kernfs_node *parent;
} __attribute__((preserve_access_index));

static __always_inline struct kernfs_node *kn_parent(struct kernfs_node *kn)
{
	if (bpf_core_field_exists(kn->__parent))
		return BPF_CORE_READ(kn, __parent);
	return BPF_CORE_READ((struct kernfs_node___old *)kn, parent);
}

static __always_inline int known(struct kernfs_node *kn, struct cgroup_name *key)
{
	const char *name;

	if (!kn)
		return 0;
	name = BPF_CORE_READ(kn, name);
	__builtin_memset(key, 0, sizeof(*key));
	if (bpf_probe_read_kernel_str(key->s, sizeof(key->s), name) <= 1)
		return 0;
	return bpf_map_lookup_elem(&gadget_catchup_cgroups, key) != 0;
}

/* The cgroup or its parent (podman with systemd: libpod-<id>.scope/container). */
static __always_inline int cgroup_known(struct cgroup *cg, struct cgroup_name *key)
{
	struct kernfs_node *kn;

	if (!cg)
		return 0;
	kn = BPF_CORE_READ(cg, kn);
	return known(kn, key) || known(kn_parent(kn), key);
}

static __always_inline struct cgroup *v1_cgroup(struct task_struct *task, int id)
{
	struct cgroup_subsys_state *css = 0;
	struct css_set *cs = BPF_CORE_READ(task, cgroups);

	if (!cs || id < 0 || id >= 16)
		return 0;
	bpf_probe_read_kernel(&css, sizeof(css), &cs->subsys[id]);
	return css ? BPF_CORE_READ(css, cgroup) : 0;
}

SEC("tracepoint/sched/sched_process_exec")
int gadget_catchup_exec(void *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct cgroup_name *key;
	__u32 zero = 0, one = 1;
	__u64 mntns, now;
	int hit;

	key = bpf_map_lookup_elem(&gadget_catchup_scratch, &zero);
	if (!key)
		return 0;
	/* cgroup v2, then the v1 pids and memory hierarchies (hybrid hosts). */
	hit = cgroup_known(BPF_CORE_READ(task, cgroups, dfl_cgrp), key);
	if (!hit && bpf_core_enum_value_exists(enum cgroup_subsys_id, pids_cgrp_id))
		hit = cgroup_known(v1_cgroup(task, bpf_core_enum_value(enum cgroup_subsys_id, pids_cgrp_id)), key);
	if (!hit && bpf_core_enum_value_exists(enum cgroup_subsys_id, memory_cgrp_id))
		hit = cgroup_known(v1_cgroup(task, bpf_core_enum_value(enum cgroup_subsys_id, memory_cgrp_id)), key);
	if (!hit)
		return 0;
	mntns = BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum);
	if (!mntns || bpf_map_lookup_elem(&gadget_mntns_filter_map, &mntns) ||
	    bpf_map_lookup_elem(&gadget_catchup_ignore, &mntns))
		return 0;
	bpf_map_update_elem(&gadget_mntns_filter_map, &mntns, &one, BPF_ANY);
	now = bpf_ktime_get_boot_ns();
	/* Namespace inodes are reused: the latest catch is the one that counts. */
	bpf_map_update_elem(&gadget_catchup_caught, &mntns, &now, BPF_ANY);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
