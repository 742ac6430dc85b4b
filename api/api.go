// Package api holds Strongroom's machine-readable contracts: the OpenAPI
// document of authd's HTTP interface (embedded here so that tests and
// tools read the very bytes in the repository) and, in subpackages, the
// event schemas.
package api

import _ "embed"

// OpenAPI is the OpenAPI 3.1 document of authd (openapi.yaml).
//
//go:embed openapi.yaml
var OpenAPI []byte
