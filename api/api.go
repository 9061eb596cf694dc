// Package api holds gw's rendering of its REST API (openapi.yaml, Swagger
// 2.0), served at GET /openapi.yaml and used by the tests to validate
// responses.
package api

import _ "embed"

// Spec is the OpenAPI document.
//
//go:embed openapi.yaml
var Spec []byte
