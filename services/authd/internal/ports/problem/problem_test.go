package problem

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestWrite(t *testing.T) {
	tests := []struct {
		name   string
		write  func(w http.ResponseWriter, r *http.Request)
		status int
		want   Details
	}{
		{
			name:   "not found",
			write:  NotFound,
			status: 404,
			want:   Details{Type: "about:blank", Title: "Not Found", Status: 404, Code: "not_found", Detail: "No resource at this path."},
		},
		{
			name:   "payload too large",
			write:  func(w http.ResponseWriter, _ *http.Request) { Write(w, 413, "request_too_large", "") },
			status: 413,
			want:   Details{Type: "about:blank", Title: "Request Entity Too Large", Status: 413, Code: "request_too_large"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(tt.write))
			defer srv.Close()
			resp, err := srv.Client().Get(srv.URL + "/anything")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.status || resp.Header.Get("Content-Type") != ContentType || resp.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("status %d, headers %v", resp.StatusCode, resp.Header)
			}
			var got Details
			if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
