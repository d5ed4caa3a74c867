package inject

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// ContainerName is the name of the injected container. A pod whose init containers already hold one of this
// name gets it replaced in place, which makes injecting twice the same as injecting once.
const ContainerName = "kafka-sidecar"

// The sidecar's non-root user, the one of its distroless base image.
const sidecarUID = 65532

// workload says where a kind keeps its pod template, for the kinds the sidecar is injected into.
type workload struct {
	apiVersion string
	path       []string // from the object to the pod template (empty: the object is a Pod)
	// stableNames: the pods' names survive a replacement, so they can serve as static group member IDs.
	stableNames bool
}

var workloads = map[string]workload{
	"Pod":         {"v1", nil, false},
	"Deployment":  {"apps/v1", []string{"spec", "template"}, false},
	"StatefulSet": {"apps/v1", []string{"spec", "template"}, true},
	"DaemonSet":   {"apps/v1", []string{"spec", "template"}, false},
	"Job":         {"batch/v1", []string{"spec", "template"}, false},
	"CronJob":     {"batch/v1", []string{"spec", "jobTemplate", "spec", "template"}, false},
}

// Object adds the sidecar to one decoded object (as encoding/json decodes it, preferably with UseNumber) when
// its kind is one of Pod, Deployment, StatefulSet, DaemonSet, Job or CronJob and its pod template asks for it.
// namespace picks the namespace defaults when the object names none (a Pod under admission may not). It
// reports whether obj changed; on error obj is left as it was.
func Object(obj map[string]any, namespace string, cfg Config) (bool, error) {
	kind, _ := obj["kind"].(string)
	apiVersion, _ := obj["apiVersion"].(string)
	w, ok := workloads[kind]
	if !ok || w.apiVersion != apiVersion {
		return false, nil
	}
	template := obj
	for _, key := range w.path {
		next, ok := template[key].(map[string]any)
		if !ok {
			return false, nil
		}
		template = next
	}
	meta, _ := template["metadata"].(map[string]any)
	spec, ok := template["spec"].(map[string]any)
	if !ok {
		return false, nil
	}
	objMeta, _ := obj["metadata"].(map[string]any)
	if err := misplaced(objMeta, meta, w); err != nil {
		return false, err
	}
	if ns, _ := objMeta["namespace"].(string); ns != "" {
		namespace = ns
	}
	stable := w.stableNames || (kind == "Pod" && ownedByStatefulSet(objMeta))
	return injectPod(meta, spec, stable, cfg.For(namespace))
}

// misplaced reports kafka-sidecar.io/ annotations on a workload's own metadata while its pod template has none:
// they would be ignored (a common slip), so they are an error that says where they belong.
func misplaced(objMeta, templateMeta map[string]any, w workload) error {
	if len(w.path) == 0 {
		return nil
	}
	own, _ := objMeta["annotations"].(map[string]any)
	tmpl, _ := templateMeta["annotations"].(map[string]any)
	if _, ok := tmpl[AnnotationInject]; ok {
		return nil
	}
	for _, k := range slices.Sorted(maps.Keys(own)) {
		if strings.HasPrefix(k, Prefix) {
			return &AnnotationError{k, fmt.Sprint(own[k]), "on the workload, where it is not read: put it on the pod template (" + strings.Join(w.path, ".") + ".metadata.annotations)"}
		}
	}
	return nil
}

// ownedByStatefulSet reports whether a Pod's controller is a StatefulSet, whose pods keep their names.
func ownedByStatefulSet(meta map[string]any) bool {
	refs, _ := meta["ownerReferences"].([]any)
	for _, r := range refs {
		ref, _ := r.(map[string]any)
		if ref["kind"] == "StatefulSet" && ref["controller"] == true {
			return true
		}
	}
	return false
}

// injectPod adds (or refreshes) the sidecar in a pod spec when the pod's annotations ask for it.
func injectPod(meta, spec map[string]any, stableNames bool, d Defaults) (bool, error) {
	annotations, err := stringAnnotations(meta)
	if err != nil {
		return false, err
	}
	s, err := ParseAnnotations(annotations)
	if err != nil || !s.Inject {
		return false, err
	}
	c, err := sidecarContainer(s, d, stableNames)
	if err != nil {
		return false, err
	}
	if err := checkPod(spec, s, c); err != nil {
		return false, err
	}
	item, err := toGeneric(c)
	if err != nil {
		return false, err
	}
	inits, _ := spec["initContainers"].([]any)
	for i, existing := range inits {
		if m, _ := existing.(map[string]any); m["name"] == ContainerName {
			if sameJSON(m, item) {
				return false, nil
			}
			inits = slices.Clone(inits)
			inits[i] = item
			spec["initContainers"] = inits
			return true, nil
		}
	}
	spec["initContainers"] = append(slices.Clone(inits), item)
	return true, nil
}

// stringAnnotations returns the pod's annotations; a kafka-sidecar.io/ value that is not a string (an
// unquoted true or 8080 in YAML) is an error, since Kubernetes would reject the object anyway.
func stringAnnotations(meta map[string]any) (map[string]string, error) {
	raw, _ := meta["annotations"].(map[string]any)
	out := make(map[string]string, len(raw))
	var errs errorList
	for _, k := range slices.Sorted(maps.Keys(raw)) {
		switch v := raw[k].(type) {
		case string:
			out[k] = v
		default:
			if strings.HasPrefix(k, Prefix) {
				errs.add(&AnnotationError{k, fmt.Sprint(v), "annotation values are strings: quote it"})
			}
		}
	}
	return out, errs.err()
}

// checkPod rejects pods the sidecar cannot join: an app container already named like the sidecar, or a port
// of another container on the sidecar's admin port.
func checkPod(spec map[string]any, s Settings, c corev1.Container) error {
	admin := c.Ports[0].ContainerPort
	for _, list := range []string{"containers", "initContainers"} {
		items, _ := spec[list].([]any)
		for _, it := range items {
			m, _ := it.(map[string]any)
			name, _ := m["name"].(string)
			if name == ContainerName {
				if list == "containers" {
					return &AnnotationError{AnnotationInject, "true", fmt.Sprintf("the pod already has an app container named %q", ContainerName)}
				}
				continue
			}
			ports, _ := m["ports"].([]any)
			for _, p := range ports {
				pm, _ := p.(map[string]any)
				if n, ok := number(pm["containerPort"]); ok && n == int64(admin) {
					value := strconv.Itoa(int(admin))
					if s.AdminPort == 0 {
						value = ""
					}
					return &AnnotationError{AnnotationAdminPort, value, fmt.Sprintf("port %d is taken by container %q: choose another admin port", admin, name)}
				}
			}
		}
	}
	return nil
}

func number(v any) (int64, bool) {
	switch n := v.(type) {
	case json.Number:
		i, err := n.Int64()
		return i, err == nil
	case float64:
		return int64(n), true
	case int64:
		return n, true
	case int:
		return int64(n), true
	}
	return 0, false
}

// sidecarContainer builds the sidecar from the pod's settings over the defaults.
func sidecarContainer(s Settings, d Defaults, stableNames bool) (corev1.Container, error) {
	pick := func(values ...string) string {
		for _, v := range values {
			if v != "" {
				return v
			}
		}
		return ""
	}
	env := maps.Clone(d.Env)
	if env == nil {
		env = map[string]string{}
	}
	for name, value := range map[string]string{
		"SIDECAR_KAFKA_BROKERS": pick(s.Brokers, d.Brokers),
		"SIDECAR_KAFKA_TOPICS":  s.Topics,
		"SIDECAR_KAFKA_GROUP":   s.Group,
		"SIDECAR_APP_URL":       s.AppURL,
	} {
		if value != "" {
			env[name] = value
		}
	}
	configMaps := uniq(d.ConfigMap, s.ConfigMap)
	secrets := uniq(d.Secret, s.Secret)
	// Without a ConfigMap or Secret that could hold them, the variables the sidecar cannot start without must
	// come from here.
	if len(configMaps)+len(secrets) == 0 {
		var errs errorList
		for _, req := range []struct{ variable, annotation string }{
			{"SIDECAR_KAFKA_BROKERS", AnnotationBrokers},
			{"SIDECAR_KAFKA_TOPICS", AnnotationTopics},
			{"SIDECAR_KAFKA_GROUP", AnnotationGroup},
		} {
			if env[req.variable] == "" {
				errs.add(&AnnotationError{req.annotation, "", "required: set it, or name a ConfigMap or Secret holding " + req.variable + " (" + AnnotationConfigMap + ", " + AnnotationSecret + ")"})
			}
		}
		if err := errs.err(); err != nil {
			return corev1.Container{}, err
		}
	}
	adminPort := DefaultAdminPort
	if d.AdminPort != 0 {
		adminPort = d.AdminPort
	}
	if s.AdminPort != 0 {
		adminPort = s.AdminPort
	}
	env["SIDECAR_ADMIN_ADDR"] = ":" + strconv.Itoa(adminPort)

	vars := make([]corev1.EnvVar, 0, len(env)+1)
	for _, name := range slices.Sorted(maps.Keys(env)) {
		vars = append(vars, corev1.EnvVar{Name: name, Value: env[name]})
	}
	static := stableNames
	if s.StaticMembership != nil {
		static = *s.StaticMembership
	}
	if static {
		vars = append(vars, corev1.EnvVar{Name: "SIDECAR_KAFKA_INSTANCE_ID", ValueFrom: &corev1.EnvVarSource{
			FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.name"},
		}})
	}

	var envFrom []corev1.EnvFromSource
	optional := true
	for _, name := range configMaps {
		src := corev1.EnvFromSource{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: name}}}
		// The defaults' objects may be missing in a namespace; the pod's own must exist.
		if name != s.ConfigMap {
			src.ConfigMapRef.Optional = &optional
		}
		envFrom = append(envFrom, src)
	}
	for _, name := range secrets {
		src := corev1.EnvFromSource{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: name}}}
		if name != s.Secret {
			src.SecretRef.Optional = &optional
		}
		envFrom = append(envFrom, src)
	}

	resources := corev1.ResourceRequirements{
		Requests: corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse(pick(s.CPURequest, d.CPURequest, DefaultCPURequest)),
			corev1.ResourceMemory: resource.MustParse(pick(s.MemoryRequest, d.MemoryRequest, DefaultMemoryRequest)),
		},
		Limits: corev1.ResourceList{
			corev1.ResourceMemory: resource.MustParse(pick(s.MemoryLimit, d.MemoryLimit, DefaultMemoryLimit)),
		},
	}
	if resources.Requests.Memory().Cmp(*resources.Limits.Memory()) > 0 {
		return corev1.Container{}, &AnnotationError{AnnotationMemoryRequest, resources.Requests.Memory().String(), "larger than the memory limit " + resources.Limits.Memory().String()}
	}

	always := corev1.ContainerRestartPolicyAlways
	yes, no := true, false
	uid := int64(sidecarUID)
	probe := func(path string, period, failures int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("sidecar-admin")}},
			PeriodSeconds:    period,
			TimeoutSeconds:   2,
			FailureThreshold: failures,
		}
	}
	return corev1.Container{
		Name:            ContainerName,
		Image:           pick(s.Image, d.Image, DefaultImageRepository+":latest"),
		ImagePullPolicy: corev1.PullIfNotPresent,
		// Always makes it a native sidecar: it starts before the app containers and stops after them.
		RestartPolicy: &always,
		Ports:         []corev1.ContainerPort{{Name: "sidecar-admin", ContainerPort: int32(adminPort), Protocol: corev1.ProtocolTCP}},
		Env:           vars,
		EnvFrom:       envFrom,
		// Startup gates the app containers, so it must not wait for /readyz, which needs the app.
		StartupProbe:   probe("/healthz", 1, 60),
		LivenessProbe:  probe("/healthz", 10, 3),
		ReadinessProbe: probe("/readyz", 5, 3),
		Resources:      resources,
		SecurityContext: &corev1.SecurityContext{
			RunAsNonRoot:             &yes,
			RunAsUser:                &uid,
			RunAsGroup:               &uid,
			ReadOnlyRootFilesystem:   &yes,
			AllowPrivilegeEscalation: &no,
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
	}, nil
}

func uniq(names ...string) []string {
	var out []string
	for _, n := range names {
		if n != "" && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// toGeneric turns a typed value into the generic form the manifests are edited in.
func toGeneric(v any) (map[string]any, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encoding the sidecar container: %w", err)
	}
	var m map[string]any
	if err := decodeJSON(data, &m); err != nil {
		return nil, fmt.Errorf("encoding the sidecar container: %w", err)
	}
	return m, nil
}

// decodeJSON decodes with json.Number for numbers, so integers keep every digit.
func decodeJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return dec.Decode(v)
}

func sameJSON(a, b any) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	if errA != nil || errB != nil {
		return reflect.DeepEqual(a, b)
	}
	return bytes.Equal(ja, jb)
}
