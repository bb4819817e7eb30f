package httpstatus

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestWriterRemembersTheStatusTheClientGets(t *testing.T) {
	tests := []struct {
		name    string
		handler func(w http.ResponseWriter)
		want    int
	}{
		{"nothing written", func(http.ResponseWriter) {}, http.StatusOK},
		{"body only", func(w http.ResponseWriter) { _, _ = w.Write([]byte("x")) }, http.StatusOK},
		{"a status", func(w http.ResponseWriter) { w.WriteHeader(http.StatusNotFound) }, http.StatusNotFound},
		{"a second status is ignored", func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusConflict)
			w.WriteHeader(http.StatusInternalServerError)
		}, http.StatusConflict},
		{"a status after the body is ignored", func(w http.ResponseWriter) {
			_, _ = w.Write([]byte("x"))
			w.WriteHeader(http.StatusInternalServerError)
		}, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			w := NewWriter(rec)
			tt.handler(w)
			if w.Status() != tt.want || rec.Code != tt.want {
				t.Errorf("Status() = %d, client got %d; want %d", w.Status(), rec.Code, tt.want)
			}
		})
	}
}

func TestWriterLetsResponseControllerFlush(t *testing.T) {
	rec := httptest.NewRecorder()
	if err := http.NewResponseController(NewWriter(rec)).Flush(); err != nil {
		t.Fatalf("Flush through the writer: %v", err)
	}
	if !rec.Flushed {
		t.Error("the underlying writer was not flushed")
	}
}
