// Package inject adds kafka-sidecar to existing Kubernetes workloads.
//
// A pod template (or a Pod) asks for the sidecar with the annotation kafka-sidecar.io/inject: "true" and
// configures it with the other kafka-sidecar.io/ annotations (see Annotations); cluster- and namespace-wide
// Defaults fill in what the annotations leave out. The sidecar is added as a native sidecar: an init container
// with restartPolicy Always, which starts before the app containers and stops after them. Nothing else in the
// pod changes: the app's containers, security contexts and volumes are left as they were.
//
// Manifests does this to a stream of manifests (the `kafka-sidecar inject` command); Object does it to one
// decoded object, which is what the admission webhook calls for every Pod, so both give the same pod.
// Injecting twice gives the same result as injecting once: an existing kafka-sidecar init container is
// replaced in place, and an object whose sidecar is already what it would become is written back untouched.
//
// Pods with stable names (a StatefulSet's) get static group membership: SIDECAR_KAFKA_INSTANCE_ID is the pod
// name, so a restart shorter than the session timeout keeps the pod's partitions. Other pods do not: their
// names change on every replacement, so a static member ID would only leave its partitions unowned until the
// session times out.
package inject
