// Package injector is kafka-sidecar's mutating admission webhook: it answers AdmissionReview v1 requests for
// Pods with the JSON patch that adds the sidecar, computed by package inject from the Pod's annotations and
// the cluster and namespace defaults, so a Pod admitted through the webhook equals the Pod `kafka-sidecar
// inject` would have written.
//
// Certificates come from files (cert-manager's Secret, mounted; re-read when renewed), or, when none are
// mounted, from a CA the injector makes itself: the first replica stores it in a Secret, every replica signs
// its own short-lived serving certificate with it and renews it before it expires, and the CA certificate
// is written into the caBundle of the MutatingWebhookConfiguration (and written again should an upgrade
// reset it).
package injector
