// Package cloudevents presents records to the app as CloudEvents: it reads the CloudEvents Kafka protocol
// binding on the way in and speaks the HTTP protocol binding on the way out.
//
// Middleware does the translation on the delivery seam, per SIDECAR_CLOUDEVENTS:
//
//   - Auto: a record in Kafka binary mode (a ce_specversion header, the other attributes in ce_* headers, the
//     data in the value) reaches the app in HTTP binary mode: each ce_<name> header becomes a ce-<name>
//     request header, the value is the body and the record's content-type header is the Content-Type. The
//     ce_* headers are not repeated as Kafka-Header-Ce_* request headers. A record in structured mode
//     (content-type application/cloudevents+json) already is an HTTP structured-mode request body and
//     passes through as it is; every other record is unchanged.
//   - Wrap: every record that is not a CloudEvent already is presented as one in HTTP binary mode, with id
//     the message ID, source kafka://<topic>/<partition>, type SIDECAR_CLOUDEVENTS_TYPE and time the record
//     timestamp; CloudEvents are presented as in Auto.
//
// The translation only ever changes what the app is shown: the record itself, and so its copies on the retry
// and dead-letter topics, keep their ce_* headers untouched.
//
// MessageID gives a CloudEvent's message ID, its source and id together, which is what makes two records the
// same message to the dedup store.
package cloudevents
