package controlplane

import (
	"encoding/json"
	"fmt"

	"github.com/valyala/fasthttp"
)

// fieldError is one entry of the error envelope.
type fieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// envelope is the API's error body:
// {"command_type": "...", "params": {"errors": [{"field": ..., "message": ...}]}}.
type envelope struct {
	CommandType string `json:"command_type"`
	Params      struct {
		Errors []fieldError `json:"errors"`
	} `json:"params"`
}

// apiError is an error a handler answers with: an HTTP status and the
// envelope's field and message. Handlers return it; the router writes it.
type apiError struct {
	status  int
	field   string
	message string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.status, e.field, e.message) }

func badRequest(field, format string, args ...any) *apiError {
	return &apiError{status: fasthttp.StatusBadRequest, field: field, message: fmt.Sprintf(format, args...)}
}

func forbidden(field, format string, args ...any) *apiError {
	return &apiError{status: fasthttp.StatusForbidden, field: field, message: fmt.Sprintf(format, args...)}
}

func notFound(field, format string, args ...any) *apiError {
	return &apiError{status: fasthttp.StatusNotFound, field: field, message: fmt.Sprintf(format, args...)}
}

func requestTimeout(field, format string, args ...any) *apiError {
	return &apiError{status: fasthttp.StatusRequestTimeout, field: field, message: fmt.Sprintf(format, args...)}
}

func statusError(status int, field, format string, args ...any) *apiError {
	return &apiError{status: status, field: field, message: fmt.Sprintf(format, args...)}
}

// writeError writes e in the envelope with the operation's command type.
func writeError(ctx *fasthttp.RequestCtx, commandType string, e *apiError) {
	var env envelope
	env.CommandType = commandType
	env.Params.Errors = []fieldError{{Field: e.field, Message: e.message}}
	writeJSON(ctx, e.status, env)
}

// writeJSON answers status with v as its JSON body.
func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Only our own response types reach here; a failure is a bug.
		panic(fmt.Sprintf("controlplane: encoding response: %v", err))
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(body)
}
