// Package problem writes RFC 9457 problem details, the error format of /v1,
// /admin/v1 and every path that exists on neither (CONTRACT.md, Errors).
package problem

import (
	"encoding/json"
	"net/http"
)

// ContentType is the media type of RFC 9457 §3.
const ContentType = "application/problem+json"

// Details is an RFC 9457 problem. Code is Strongroom's stable extension
// member (CONTRACT.md, Errors): clients branch on it, never on Title or
// Detail, which are for humans and may change.
type Details struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Code   string `json:"code"`
	Detail string `json:"detail,omitempty"`
}

// Write sends a problem with type about:blank, whose title is, per RFC
// 9457 §4.2.1, the status's reason phrase. detail must not echo request
// input or internal errors.
func Write(w http.ResponseWriter, status int, code, detail string) {
	WriteDetails(w, Details{Type: "about:blank", Title: http.StatusText(status), Status: status, Code: code, Detail: detail})
}

// WriteDetails sends d with its Status.
func WriteDetails(w http.ResponseWriter, d Details) {
	h := w.Header()
	h.Set("Content-Type", ContentType)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Del("Content-Length")
	w.WriteHeader(d.Status)
	_ = json.NewEncoder(w).Encode(d)
}

// NotFound answers every path no route matched.
func NotFound(w http.ResponseWriter, _ *http.Request) {
	Write(w, http.StatusNotFound, "not_found", "No resource at this path.")
}
