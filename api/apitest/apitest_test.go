package apitest

import (
	"net/http"
	"testing"
)

func TestCheck(t *testing.T) {
	h := http.Header{"Content-Type": {"application/json"}}
	good := `{"command_type":"PEERS_CREATE","params":{"peer_id":"a","token":"pt-1"}}`
	if err := Check("POST", "/peers", 201, h, []byte(good)); err != nil {
		t.Fatalf("valid response rejected: %v", err)
	}
	for name, c := range map[string]struct {
		status int
		body   string
	}{
		"missing token":     {201, `{"command_type":"PEERS_CREATE","params":{"peer_id":"a"}}`},
		"undocumented code": {418, `{}`},
		"bad envelope":      {400, `{"command_type":"PEERS_CREATE"}`},
		"wrong type":        {201, `{"command_type":"PEERS_CREATE","params":{"peer_id":1,"token":"pt-1"}}`},
	} {
		if err := Check("POST", "/peers", c.status, h, []byte(c.body)); err == nil {
			t.Errorf("%s: invalid response accepted", name)
		}
	}
	if err := Check("GET", "/nowhere", 200, h, []byte(`{}`)); err == nil {
		t.Error("unknown path accepted")
	}
	env := `{"command_type":"PEERS_STATUS","params":{"errors":[{"field":"token","message":"x"}]}}`
	for _, code := range []int{400, 403, 404} {
		if err := Check("GET", "/peers/x/status?token=y", code, h, []byte(env)); err != nil {
			t.Errorf("%d envelope rejected: %v", code, err)
		}
	}
}
