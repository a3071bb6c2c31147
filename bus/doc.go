// Package bus is everything the apiserver and the workers do with NATS: connecting with backoff, running an
// embedded server, provisioning the work-queue stream and the KV buckets named by schema, typed
// request/reply, compare-and-set updates of sandbox records along the state machine, and ordered,
// flow-controlled byte streams for output that may be larger than a NATS message.
// It knows nothing of HTTP or of sandbox runtimes.
package bus
