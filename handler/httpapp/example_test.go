package httpapp_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/kafka-sidecar/kafka-sidecar/handler"
	"github.com/kafka-sidecar/kafka-sidecar/handler/httpapp"
)

func ExampleDeliverer_Deliver() {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Printf("app got %s %s key=%s attempt=%s body=%s\n", r.URL.Path, r.Header.Get("Idempotency-Key"),
			r.Header.Get("Kafka-Key"), r.Header.Get("Kafka-Attempt"), body)
		http.Error(w, "total must be positive", http.StatusUnprocessableEntity)
	}))
	defer app.Close()

	h, err := httpapp.New(httpapp.Options{URL: app.URL + "/events/{topic}", Timeout: 5 * time.Second})
	if err != nil {
		panic(err)
	}
	defer h.CloseIdleConnections()
	res := h.DeliverOne(context.Background(), &handler.Delivery{
		ID: "orders/0/42", Topic: "orders", Offset: 42, Key: []byte("customer-7"), Value: []byte(`{"total":-1}`), Attempt: 1,
	})
	fmt.Println(res.Outcome, res.Status, res.Reason)
	// Output:
	// app got /events/orders orders/0/42 key=customer-7 attempt=1 body={"total":-1}
	// permanent 422 http 422: total must be positive
}

func ExampleClassifyStatus() {
	for _, code := range []int{200, 409, 422, 500, 503, 404} {
		fmt.Println(code, httpapp.ClassifyStatus(code))
	}
	// Output:
	// 200 success
	// 409 success
	// 422 permanent
	// 500 retryable
	// 503 app_unavailable
	// 404 app_unavailable
}

func ExampleParseRetryAfter() {
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	fmt.Println(httpapp.ParseRetryAfter("30", now))
	fmt.Println(httpapp.ParseRetryAfter("Wed, 01 May 2024 12:02:00 GMT", now))
	fmt.Println(httpapp.ParseRetryAfter("86400", now))
	// Output:
	// 30s
	// 2m0s
	// 5m0s
}
