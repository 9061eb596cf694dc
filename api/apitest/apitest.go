// Package apitest checks gw's HTTP responses against api/openapi.yaml. Tests
// of every package that answers the REST API use it, so a response that
// drifts from the contract fails a test.
package apitest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/getkin/kin-openapi/openapi2"
	"github.com/getkin/kin-openapi/openapi2conv"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/gw-project/gw/api"
)

var (
	once   sync.Once
	router routers.Router
	errDoc error
)

func load() {
	var doc2 openapi2.T
	if errDoc = openapi2.UnmarshalFromData(api.Spec, &doc2); errDoc != nil {
		return
	}
	var doc3 *openapi3.T
	if doc3, errDoc = openapi2conv.ToV3(&doc2); errDoc != nil {
		return
	}
	// The spec's host is an example; match requests whatever address the
	// test server listens on.
	doc3.Servers = nil
	// The original's examples break their own enums (TYPE_OF_EVENT); the
	// schemas are what responses are held to.
	if errDoc = doc3.Validate(context.Background(), openapi3.DisableExamplesValidation()); errDoc != nil {
		errDoc = fmt.Errorf("api/openapi.yaml is not a valid document: %w", errDoc)
		return
	}
	router, errDoc = legacy.NewRouter(doc3, openapi3.DisableExamplesValidation())
}

// Check validates one response (status, content type and body) against the
// operation that method and path name.
func Check(method, path string, status int, header http.Header, body []byte) error {
	once.Do(load)
	if errDoc != nil {
		return errDoc
	}
	req, err := http.NewRequest(method, "http://gw"+path, nil)
	if err != nil {
		return err
	}
	route, params, err := router.FindRoute(req)
	if err != nil {
		return fmt.Errorf("%s %s: not an operation of the spec: %w", method, path, err)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request:    req,
			PathParams: params,
			Route:      route,
			Options:    &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
		},
		Status: status,
		Header: header,
		Body:   io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{
			IncludeResponseStatus: true,
			MultiError:            true,
		},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		return fmt.Errorf("%s %s → %d %s: %w", method, path, status, body, err)
	}
	return nil
}
