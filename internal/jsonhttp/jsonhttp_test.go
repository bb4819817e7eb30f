package jsonhttp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/paytrade/paytrade/internal/problem"
)

// applyRequest has the shape of the pay service's POST /pay-orders body.
type applyRequest struct {
	BizOrderNo     int64  `json:"bizOrderNo"`
	Amount         int64  `json:"amount"`
	PayChannelCode string `json:"payChannelCode"`
	PayType        int    `json:"payType"`
	OrderInfo      string `json:"orderInfo"`
}

func decodeBody(body string) (applyRequest, error) {
	var got applyRequest
	r := httptest.NewRequest(http.MethodPost, "/pay-orders", strings.NewReader(body))
	err := Decode(httptest.NewRecorder(), r, &got)
	return got, err
}

func TestDecodeAcceptsOneObject(t *testing.T) {
	tests := []struct {
		name string
		body string
		want applyRequest
	}{
		{"all fields", `{"bizOrderNo":123,"amount":10000,"payChannelCode":"balance","payType":5,"orderInfo":"x"}`,
			applyRequest{BizOrderNo: 123, Amount: 10000, PayChannelCode: "balance", PayType: 5, OrderInfo: "x"}},
		{"surrounding whitespace", " \n{\"amount\":1}\r\n\t", applyRequest{Amount: 1}},
		{"empty object", `{}`, applyRequest{}},
		{"largest int64", `{"amount":9223372036854775807}`, applyRequest{Amount: 9223372036854775807}},
		{"negative", `{"amount":-5}`, applyRequest{Amount: -5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeBody(tt.body)
			if err != nil {
				t.Fatalf("Decode(%q) error = %v, want nil", tt.body, err)
			}
			if got != tt.want {
				t.Errorf("Decode(%q) = %+v, want %+v", tt.body, got, tt.want)
			}
		})
	}
}

func TestDecodeRefusesWithClearMessage(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		wantKind problem.Kind
		wantCode string
		wantMsg  string // a substring of the message
	}{
		{"unknown field", `{"amount":1,"x":2}`, problem.Invalid, "invalid_json", `unknown field "x"`},
		{"trailing garbage", `{"amount":1} garbage`, problem.Invalid, "invalid_json", "single JSON object"},
		{"two objects", `{"amount":1}{"amount":2}`, problem.Invalid, "invalid_json", "single JSON object"},
		{"empty", ``, problem.Invalid, "invalid_json", "empty"},
		{"only whitespace", " \n ", problem.Invalid, "invalid_json", "empty"},
		{"null", `null`, problem.Invalid, "invalid_json", "must be a JSON object"},
		{"array", `[{"amount":1}]`, problem.Invalid, "invalid_json", "must be a JSON object"},
		{"number", `42`, problem.Invalid, "invalid_json", "must be a JSON object"},
		{"string", `"hi"`, problem.Invalid, "invalid_json", "must be a JSON object"},
		{"syntax error", `{"amount":1,}`, problem.Invalid, "invalid_json", "at byte 13"},
		{"truncated", `{"amount":`, problem.Invalid, "invalid_json", "ends in the middle"},
		{"string for number", `{"amount":"100"}`, problem.Invalid, "invalid_json", "amount must be an integer"},
		{"number for string", `{"payChannelCode":1}`, problem.Invalid, "invalid_json", "payChannelCode must be a string"},
		{"object for number", `{"amount":{}}`, problem.Invalid, "invalid_json", "amount must be an integer"},
		{"int64 overflow", `{"amount":9223372036854775808}`, problem.Invalid, "invalid_json", "amount is out of range"},
		{"int64 underflow", `{"amount":-9223372036854775809}`, problem.Invalid, "invalid_json", "amount is out of range"},
		{"float into int64", `{"amount":1.5}`, problem.Invalid, "invalid_json", "amount must be an integer"},
		{"exponent into int64", `{"amount":1e3}`, problem.Invalid, "invalid_json", "amount must be an integer"},
		{"huge body", `{"orderInfo":"` + strings.Repeat("a", MaxBodyBytes) + `"}`, problem.TooLarge, "body_too_large", "must not exceed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeBody(tt.body)
			p, ok := problem.As(err)
			if !ok {
				t.Fatalf("Decode error = %v, want a *problem.Error", err)
			}
			if p.Kind != tt.wantKind || p.Code != tt.wantCode {
				t.Errorf("Decode error kind, code = %v, %q, want %v, %q", p.Kind, p.Code, tt.wantKind, tt.wantCode)
			}
			if !strings.Contains(p.Message, tt.wantMsg) {
				t.Errorf("Decode error message = %q, want it to contain %q", p.Message, tt.wantMsg)
			}
		})
	}
}

func TestDecodeBodyExactlyAtLimitIsAccepted(t *testing.T) {
	prefix, suffix := `{"orderInfo":"`, `"}`
	body := prefix + strings.Repeat("a", MaxBodyBytes-len(prefix)-len(suffix)) + suffix
	got, err := decodeBody(body)
	if err != nil {
		t.Fatalf("Decode of a %d-byte body: %v, want nil", len(body), err)
	}
	if len(got.OrderInfo) != MaxBodyBytes-len(prefix)-len(suffix) {
		t.Errorf("len(OrderInfo) = %d, want %d", len(got.OrderInfo), MaxBodyBytes-len(prefix)-len(suffix))
	}
}

func TestDecodeIntoNonPointerIsUnexpected(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{}`))
	err := Decode(httptest.NewRecorder(), r, applyRequest{})
	if err == nil {
		t.Fatal("Decode into a non-pointer: nil error, want one")
	}
	if p, ok := problem.As(err); ok {
		t.Errorf("Decode into a non-pointer = refusal %v, want an unexpected error", p)
	}
}

func TestStatus(t *testing.T) {
	tests := []struct {
		kind problem.Kind
		want int
	}{
		{problem.Invalid, http.StatusBadRequest},
		{problem.Unauthorized, http.StatusUnauthorized},
		{problem.Forbidden, http.StatusForbidden},
		{problem.NotFound, http.StatusNotFound},
		{problem.Conflict, http.StatusConflict},
		{problem.Unprocessable, http.StatusUnprocessableEntity},
		{problem.TooLarge, http.StatusRequestEntityTooLarge},
		{problem.Unavailable, http.StatusServiceUnavailable},
		{problem.Locked, http.StatusLocked},
		{problem.Busy, http.StatusTooManyRequests},
		{problem.Kind(0), http.StatusInternalServerError},
		{problem.Kind(99), http.StatusInternalServerError},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.kind), func(t *testing.T) {
			if got := Status(tt.kind); got != tt.want {
				t.Errorf("Status(%v) = %d, want %d", tt.kind, got, tt.want)
			}
		})
	}
}

func TestErrorAnswersRefusalsAndHidesTheRest(t *testing.T) {
	notFound := problem.New(problem.NotFound, "pay_order_not_found", "no such pay order")
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantBody   errorBody
		wantLogged bool
	}{
		{"refusal", notFound, http.StatusNotFound, errorBody{"pay_order_not_found", "no such pay order"}, false},
		{"wrapped refusal", fmt.Errorf("get pay order 7: %w", notFound), http.StatusNotFound, errorBody{"pay_order_not_found", "no such pay order"}, false},
		{"too large", problem.New(problem.TooLarge, "body_too_large", "too big"), http.StatusRequestEntityTooLarge, errorBody{"body_too_large", "too big"}, false},
		{"unexpected", errors.New("connection refused to 10.0.0.5:5432"), http.StatusInternalServerError, errorBody{"internal", "internal error"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			log := slog.New(slog.NewJSONHandler(&logs, nil))
			w := httptest.NewRecorder()
			r := httptest.NewRequest(http.MethodGet, "/pay-orders/7", nil)

			Error(w, r, log, tt.err)

			if w.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d", w.Code, tt.wantStatus)
			}
			if got, want := w.Header().Get("Content-Type"), "application/json; charset=utf-8"; got != want {
				t.Errorf("Content-Type = %q, want %q", got, want)
			}
			var got errorBody
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
				t.Fatalf("body %q is not JSON: %v", w.Body.String(), err)
			}
			if got != tt.wantBody {
				t.Errorf("body = %+v, want %+v", got, tt.wantBody)
			}
			if strings.Contains(w.Body.String(), "10.0.0.5") {
				t.Errorf("body %q leaks the internal error", w.Body.String())
			}
			lines := strings.Count(logs.String(), "\n")
			if tt.wantLogged {
				if lines != 1 {
					t.Fatalf("logged %d lines, want 1: %s", lines, logs.String())
				}
				for _, want := range []string{`"level":"ERROR"`, `"method":"GET"`, `"path":"/pay-orders/7"`, "10.0.0.5"} {
					if !strings.Contains(logs.String(), want) {
						t.Errorf("log %s does not contain %s", logs.String(), want)
					}
				}
			} else if lines != 0 {
				t.Errorf("logged %q for a refusal, want nothing", logs.String())
			}
		})
	}
}

func TestEncode(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		v          any
		wantStatus int
		wantBody   string
	}{
		{"object", http.StatusCreated, map[string]int64{"userId": 1}, http.StatusCreated, `{"userId":1}` + "\n"},
		{"unencodable", http.StatusOK, map[string]any{"c": make(chan int)}, http.StatusInternalServerError, `{"code":"internal","message":"internal error"}` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			Encode(w, tt.status, tt.v)
			if w.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d", w.Code, tt.wantStatus)
			}
			if got := w.Body.String(); got != tt.wantBody {
				t.Errorf("body = %q, want %q", got, tt.wantBody)
			}
			if got, want := w.Header().Get("Content-Type"), "application/json; charset=utf-8"; got != want {
				t.Errorf("Content-Type = %q, want %q", got, want)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		`{"bizOrderNo":123,"amount":10000,"payChannelCode":"balance","payType":5,"orderInfo":"x"}`,
		`{}`, ``, `null`, `[]`, `{"amount":1.5}`, `{"amount":9223372036854775808}`,
		`{"amount":1} {}`, `{"x":1}`, `{"orderInfo":"\ud800"}`, `{"AMOUNT":1,"amount":2}`,
		"{\"orderInfo\":\"\xff\"}", `{"payType":1e2}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var got applyRequest
		r := httptest.NewRequest(http.MethodPost, "/pay-orders", bytes.NewReader(body))
		err := Decode(httptest.NewRecorder(), r, &got)
		if err != nil {
			p, ok := problem.As(err)
			if !ok {
				t.Fatalf("Decode(%q) = %v, want a *problem.Error", body, err)
			}
			if s := Status(p.Kind); s < 400 || s > 499 {
				t.Fatalf("Decode(%q) = %v with status %d, want 4xx", body, err, s)
			}
			return
		}
		encoded, err := json.Marshal(got)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", got, err)
		}
		var again applyRequest
		r = httptest.NewRequest(http.MethodPost, "/pay-orders", bytes.NewReader(encoded))
		if err := Decode(httptest.NewRecorder(), r, &again); err != nil {
			t.Fatalf("Decode of re-encoded %s: %v", encoded, err)
		}
		if again != got {
			t.Fatalf("round trip of %q: got %+v, want %+v", body, again, got)
		}
	})
}

// readErrorBody fails every read, like a client that disconnects mid-body.
type readErrorBody struct{}

func (readErrorBody) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }
func (readErrorBody) Close() error             { return nil }

func TestDecodeUnreadableBodyIsARefusal(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	r.Body = readErrorBody{}
	var v applyRequest
	err := Decode(httptest.NewRecorder(), r, &v)
	p, ok := problem.As(err)
	if !ok || p.Kind != problem.Invalid {
		t.Errorf("Decode of an unreadable body = %v, want an Invalid refusal", err)
	}
}

func TestErrorSaysWhenToRetryInWholeSecondsRoundedUp(t *testing.T) {
	locked := problem.New(problem.Locked, "payment_password_locked", "locked")
	for _, tt := range []struct {
		after time.Duration
		want  string
	}{{15 * time.Minute, "900"}, {1500 * time.Millisecond, "2"}, {time.Nanosecond, "1"}, {0, ""}} {
		w := httptest.NewRecorder()
		Error(w, httptest.NewRequest(http.MethodPost, "/pay-orders/7", nil), nil, locked.WithRetryAfter(tt.after))
		if w.Code != http.StatusLocked || w.Header().Get("Retry-After") != tt.want {
			t.Errorf("retry after %v: %d Retry-After %q, want 423 %q", tt.after, w.Code, w.Header().Get("Retry-After"), tt.want)
		}
	}
}
