package decode

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/sr"
	"golang.org/x/sync/singleflight"
)

// ErrUnavailable marks a failure to reach the schema registry, or an answer that says the registry cannot
// serve right now or is misconfigured: the same record may decode once it answers.
var ErrUnavailable = errors.New("schema registry unavailable")

// ErrNotFound marks a schema ID (or a schema it refers to) that the registry does not have.
var ErrNotFound = errors.New("not found in the schema registry")

// maxReferences bounds the schemas one schema may pull in through references, directly or not.
const maxReferences = 256

// codec turns the data after the schema ID into JSON.
type codec interface {
	appendJSON(dst, payload []byte) ([]byte, error)
}

// Schema is a registered schema, compiled.
type Schema struct {
	// ID is the registry's schema ID.
	ID int
	// Type is AVRO, PROTOBUF or JSON.
	Type sr.SchemaType
	// Subjects are the subjects the schema is registered under, as far as the registry told.
	Subjects []string
	codec    codec
}

// AppendJSON appends the JSON form of payload, the bytes after the schema ID in wire format.
func (s *Schema) AppendJSON(dst, payload []byte) ([]byte, error) {
	return s.codec.appendJSON(dst, payload)
}

// Subject returns the subject to name for a record of topic: <topic>-value (or -key), the subject the
// default naming strategy uses, when the schema is registered under it, else the first one known.
func (s *Schema) Subject(topic string, key bool) string {
	want := topic + "-value"
	if key {
		want = topic + "-key"
	}
	for _, sub := range s.Subjects {
		if sub == want {
			return sub
		}
	}
	if len(s.Subjects) > 0 {
		return s.Subjects[0]
	}
	return ""
}

// RegistryOptions configures a Registry.
type RegistryOptions struct {
	// MaxSchemas bounds the compiled schemas kept; the least recently used goes first. Default 1000.
	MaxSchemas int
	// NotFoundTTL is how long the registry's "no such schema" is believed before asking again. Default 30s.
	NotFoundTTL time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Registry fetches schemas from a Confluent-compatible schema registry by ID and keeps them compiled. It is
// safe for concurrent use; concurrent requests for one ID share one fetch.
type Registry struct {
	client      *sr.Client
	maxSchemas  int
	notFoundTTL time.Duration
	now         func() time.Time
	fetches     singleflight.Group

	mu      sync.Mutex
	entries map[int]*list.Element // of *entry
	lru     *list.List            // front: most recently used
	down    error                 // the last outage, nil once the registry answered again
	since   time.Time             // when the outage began
}

// entry is a cached outcome for one ID: a schema, or an error that is not an outage.
type entry struct {
	id      int
	schema  *Schema
	err     error
	expires time.Time // zero: until evicted
}

// NewRegistry returns a Registry that asks client.
func NewRegistry(client *sr.Client, opts RegistryOptions) *Registry {
	if opts.MaxSchemas <= 0 {
		opts.MaxSchemas = 1000
	}
	if opts.NotFoundTTL <= 0 {
		opts.NotFoundTTL = 30 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Registry{
		client: client, maxSchemas: opts.MaxSchemas, notFoundTTL: opts.NotFoundTTL, now: opts.Now,
		entries: map[int]*list.Element{}, lru: list.New(),
	}
}

// Schema returns the compiled schema of id. Its error wraps ErrUnavailable when the registry could not be
// asked (nothing is cached then), ErrNotFound when it does not know the ID; any other error is a schema
// that cannot be compiled.
func (r *Registry) Schema(ctx context.Context, id int) (*Schema, error) {
	if s, err, ok := r.cached(id); ok {
		return s, err
	}
	v, err, _ := r.fetches.Do(strconv.Itoa(id), func() (any, error) {
		if s, err, ok := r.cached(id); ok {
			return s, err
		}
		s, err := r.fetch(ctx, id)
		r.answered(err)
		if errors.Is(err, ErrUnavailable) {
			return nil, err
		}
		r.store(id, s, err)
		return s, err
	})
	s, _ := v.(*Schema)
	return s, err
}

func (r *Registry) cached(id int) (*Schema, error, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	el, ok := r.entries[id]
	if !ok {
		return nil, nil, false
	}
	e := el.Value.(*entry)
	if !e.expires.IsZero() && r.now().After(e.expires) {
		r.lru.Remove(el)
		delete(r.entries, id)
		return nil, nil, false
	}
	r.lru.MoveToFront(el)
	return e.schema, e.err, true
}

func (r *Registry) store(id int, s *Schema, err error) {
	e := &entry{id: id, schema: s, err: err}
	if errors.Is(err, ErrNotFound) {
		e.expires = r.now().Add(r.notFoundTTL)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if el, ok := r.entries[id]; ok {
		r.lru.Remove(el)
	}
	r.entries[id] = r.lru.PushFront(e)
	for r.lru.Len() > r.maxSchemas {
		last := r.lru.Back()
		r.lru.Remove(last)
		delete(r.entries, last.Value.(*entry).id)
	}
}

// answered records whether the registry could be asked: an outage starts with the first ErrUnavailable and
// ends with the next answer of any kind.
func (r *Registry) answered(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !errors.Is(err, ErrUnavailable) {
		r.down = nil
		return
	}
	if r.down == nil {
		r.since = r.now()
	}
	r.down = err
}

// Unavailable returns why the registry could not be asked, and since when, while it cannot; nil once it
// answered again. Schemas already cached keep decoding meanwhile; readiness reports it.
func (r *Registry) Unavailable() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down == nil {
		return nil
	}
	return fmt.Errorf("%w (since %s)", r.down, r.since.UTC().Format(time.RFC3339))
}

// Len returns the number of IDs cached.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lru.Len()
}

// fetch asks the registry for the schema of id and its references, and compiles it.
func (r *Registry) fetch(ctx context.Context, id int) (*Schema, error) {
	s, err := r.client.SchemaByID(ctx, id)
	if err != nil {
		return nil, r.classify(ctx, err, "fetching schema id "+strconv.Itoa(id))
	}
	refs, err := r.references(ctx, s.References)
	if err != nil {
		return nil, err
	}
	out := &Schema{ID: id, Type: s.Type}
	switch s.Type {
	case sr.TypeAvro:
		texts := make([]string, len(refs))
		for i, ref := range refs {
			texts[i] = ref.Schema.Schema
		}
		out.codec, err = newAvroCodec(s.Schema, texts)
	case sr.TypeProtobuf:
		deps := make(map[string]string, len(refs))
		for _, ref := range refs {
			deps[ref.name] = ref.Schema.Schema
		}
		out.codec, err = newProtoCodec(s.Schema, deps)
	case sr.TypeJSON:
		out.codec = jsonCodec{}
	default:
		err = fmt.Errorf("schema type %s is not supported", s.Type)
	}
	if err != nil {
		return nil, err
	}
	// The subject is a courtesy to the app: a registry that cannot tell it does not stop the record.
	if versions, err := r.client.SchemaVersionsByID(ctx, id); err == nil {
		for _, v := range versions {
			out.Subjects = append(out.Subjects, v.Subject)
		}
	}
	return out, nil
}

// namedSchema is a referenced schema with the name it is referred to by.
type namedSchema struct {
	name string
	sr.SubjectSchema
}

// references fetches the schemas refs name, and theirs, each once, dependencies before the schemas that
// refer to them.
func (r *Registry) references(ctx context.Context, refs []sr.SchemaReference) ([]namedSchema, error) {
	var out []namedSchema
	seen := map[string]bool{}
	var visit func(refs []sr.SchemaReference) error
	visit = func(refs []sr.SchemaReference) error {
		for _, ref := range refs {
			key := ref.Subject + "\x00" + strconv.Itoa(ref.Version)
			if seen[key] {
				continue
			}
			seen[key] = true
			if len(seen) > maxReferences {
				return fmt.Errorf("more than %d schema references", maxReferences)
			}
			s, err := r.client.SchemaByVersion(ctx, ref.Subject, ref.Version)
			if err != nil {
				return r.classify(ctx, err, fmt.Sprintf("fetching reference %s (subject %s version %d)", ref.Name, ref.Subject, ref.Version))
			}
			if err := visit(s.References); err != nil {
				return err
			}
			out = append(out, namedSchema{name: ref.Name, SubjectSchema: s})
		}
		return nil
	}
	return out, visit(refs)
}

// classify wraps a registry error: ErrNotFound when the registry answered that it has no such schema,
// ErrUnavailable for everything else (no answer, 5xx, 429, rejected credentials, a URL that is not a
// registry): waiting, or fixing the configuration, may let the record decode.
func (r *Registry) classify(ctx context.Context, err error, what string) error {
	var re *sr.ResponseError
	if errors.As(err, &re) && re.StatusCode == http.StatusNotFound {
		// 40401 subject, 40402 version, 40403 schema: the registry itself says the schema is not there.
		// Any other 404 comes from something that is not a registry (a wrong URL path).
		if re.ErrorCode >= 40401 && re.ErrorCode <= 40403 {
			return fmt.Errorf("%s: %w", what, ErrNotFound)
		}
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%w: %s: %w", ErrUnavailable, what, ctx.Err())
	}
	return fmt.Errorf("%w: %s: %s", ErrUnavailable, what, describe(err))
}

// describe names a registry error compactly: the status and message of an answer, else the error.
func describe(err error) string {
	var re *sr.ResponseError
	if errors.As(err, &re) {
		return fmt.Sprintf("http %d from %s: %s", re.StatusCode, re.URL, truncate(re.Error(), 200))
	}
	return err.Error()
}
