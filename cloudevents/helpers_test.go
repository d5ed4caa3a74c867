package cloudevents_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/kafka-sidecar/kafka-sidecar/test/ceapp"
)

// sameEvent fails the test unless got carries want's attributes and data.
func sameEvent(t *testing.T, got, want event.Event) {
	t.Helper()
	if diff := ceapp.SameEvent(got, want); diff != "" {
		t.Errorf("event %s: %s", want.ID(), diff)
	}
}

// capturedRequest is one request a plain capturing server saw.
type capturedRequest struct {
	http.Header
	body []byte
}

// capture starts a server that answers 200 and hands over every request it saw.
func capture(t *testing.T) (string, <-chan capturedRequest) {
	t.Helper()
	ch := make(chan capturedRequest, 8)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ch <- capturedRequest{Header: r.Header.Clone(), body: body}
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/", ch
}
