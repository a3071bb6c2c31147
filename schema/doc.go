// Package schema owns every contract between the apiserver and the workers: the sandbox record kept in
// JetStream KV and its state machine, the names of subjects, streams and buckets, the messages sent on
// the bus, identifiers and the error table. It imports only the standard library, so that both sides
// compile against one definition and can never disagree.
package schema
