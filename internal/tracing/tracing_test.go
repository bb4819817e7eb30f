package tracing

import (
	"strings"
	"testing"
)

func TestReadConfigIsOffUnlessAskedAndRefusesAnUnknownExporter(t *testing.T) {
	tests := []struct {
		env          map[string]string
		wantExporter string
		wantEndpoint string
		wantService  string
		wantErr      string
	}{
		{env: nil, wantExporter: ExporterNone, wantService: "pay"},
		{env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, wantExporter: ExporterOTLP, wantEndpoint: "http://localhost:4318/v1/traces", wantService: "pay"},
		{env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://tempo:4318/", "OTEL_SERVICE_NAME": "pay-eu"},
			wantExporter: ExporterOTLP, wantEndpoint: "http://tempo:4318/v1/traces", wantService: "pay-eu"},
		{env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/t"}, wantExporter: ExporterOTLP, wantEndpoint: "http://c:4318/t", wantService: "pay"},
		{env: map[string]string{"OTEL_TRACES_EXPORTER": "console"}, wantExporter: ExporterConsole, wantService: "pay"},
		{env: map[string]string{"OTEL_TRACES_EXPORTER": "jaeger"}, wantErr: "OTEL_TRACES_EXPORTER"},
		{env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, wantErr: "OTEL_EXPORTER_OTLP_PROTOCOL"},
	}
	for _, tt := range tests {
		t.Run(tt.env["OTEL_TRACES_EXPORTER"]+tt.env["OTEL_EXPORTER_OTLP_PROTOCOL"], func(t *testing.T) {
			c, err := ReadConfig(func(k string) string { return tt.env[k] }, "pay")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ReadConfig = %v, want an error naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil || c.Exporter != tt.wantExporter || c.Endpoint != tt.wantEndpoint || c.Service != tt.wantService {
				t.Errorf("ReadConfig = %+v, %v; want exporter %q, endpoint %q, service %q", c, err, tt.wantExporter, tt.wantEndpoint, tt.wantService)
			}
		})
	}
}
